"""A fake OpenAI-compatible server on 127.0.0.1 for the remote backend's fault tests.

Each request takes the next behaviour from a script (then ``default``): ``ok`` (a well-formed answer that
echoes the request), ``500``, ``429`` (with ``Retry-After: 0``), ``hang`` (sleeps past any test timeout),
``malformed`` (status 200, a body that is not JSON), ``no_choices`` (valid JSON without choices) and
``bad_key`` (401). Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def answer_for(body: dict[str, Any]) -> str:
    """The fake model's deterministic answer: a digest of what was asked."""
    if "prompt" in body:
        asked = str(body["prompt"])
    else:
        asked = " | ".join(f"{m['role']}:{m['content']}" for m in body["messages"])
    return f"answer[{len(asked)}] {asked[-24:]!r} seed={body.get('seed')}"


class FakeServer:
    def __init__(
        self,
        script: list[str] | None = None,
        default: str = "ok",
        hang_s: float = 30.0,
        responder: Callable[[dict[str, Any]], str] = answer_for,
    ):
        self.responder = responder
        self.script = list(script or [])
        self.default = default
        self.hang_s = hang_s
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.behaviours: list[str] = []
        self.delay_s = 0.0
        self.retry_after = "0"
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                with server._lock:
                    mode = server.script.pop(0) if server.script else server.default
                    server.bodies.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                    server.behaviours.append(mode)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self._behave(mode, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _behave(self, mode: str, body: dict[str, Any]) -> None:
                if server.delay_s:
                    time.sleep(server.delay_s)
                if mode == "hang":
                    server._release.wait(server.hang_s)
                    return
                if mode == "malformed":
                    self._send(200, b'{"id": "x", "choices": [{"text": "cut sh', "application/json")
                elif mode == "no_choices":
                    self._send(200, json.dumps({"id": "x", "object": "text_completion"}).encode(), "application/json")
                elif mode == "500":
                    self._send(500, b'{"error": {"message": "internal failure"}}', "application/json")
                elif mode == "429":
                    self._send(
                        429,
                        b'{"error": {"message": "slow down"}}',
                        "application/json",
                        {"Retry-After": server.retry_after},
                    )
                elif mode == "bad_key":
                    self._send(401, b'{"error": {"message": "invalid api key"}}', "application/json")
                else:
                    text = server.responder(body)
                    if self.path.endswith("/chat/completions"):
                        choice: dict[str, Any] = {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": text},
                        }
                        obj = "chat.completion"
                    else:
                        choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                        obj = "text_completion"
                    payload = {
                        "id": "x",
                        "object": obj,
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [choice],
                    }
                    self._send(200, json.dumps(payload).encode(), "application/json")

            def _send(self, code: int, data: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def requests(self) -> int:
        with self._lock:
            return len(self.bodies)

    def release(self) -> None:
        self._release.set()


@contextmanager
def fake_server(
    script: list[str] | None = None,
    default: str = "ok",
    hang_s: float = 30.0,
    responder: Callable[[dict[str, Any]], str] = answer_for,
) -> Iterator[FakeServer]:
    server = FakeServer(script, default, hang_s, responder)
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release()
        server.httpd.shutdown()
        server.httpd.server_close()
