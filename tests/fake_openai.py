"""A local OpenAI-compatible server for the conformance suite: chat completions as JSON or SSE,
with or without usage, with tool calls, embeddings, and 429s.

What each request gets is read from the request itself, as a real provider's answer would be:
`stream`, `stream_options.include_usage`, `tools`; the model name `rate-limited` is answered 429,
and a model ending in `-no-usage` gets a JSON answer without usage (OpenAI-compatible servers
that report none). A stream's first chunk waits `FIRST_CHUNK_S`, so time to first chunk is
measurable and differs from the call's duration.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FIRST_CHUNK_S", "FakeOpenAI", "FINGERPRINT", "RESPONSE_MODEL", "STREAM_WORDS", "USAGE"]

RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
"""The dated model the server says answered (the request asks for an alias)."""
FINGERPRINT = "fp_conformance"
USAGE = {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28,
         "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 3}}  # fmt: skip
"""The usage every answer reports, when it reports one."""
STREAM_WORDS = 40
"""Content chunks in a stream: enough that a consumer stopping after the first leaves most unread."""
FIRST_CHUNK_S = 0.2
CHUNK_GAP_S = 0.002


def _completion(model: str, *, tools: bool, usage: bool) -> dict[str, Any]:
    if tools:
        call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": [call]}
    else:
        message = {"role": "assistant", "content": "Paris is the capital of France."}
    body: dict[str, Any] = {
        "id": "chatcmpl-conformance", "object": "chat.completion", "created": int(time.time()), "model": model,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tools else "stop", "logprobs": None}],
    }  # fmt: skip
    if usage:
        body["usage"] = USAGE
    return body


def _chunks(model: str, *, usage: bool) -> Iterator[dict[str, Any]]:
    base = {"id": "chatcmpl-conformance", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "system_fingerprint": FINGERPRINT}  # fmt: skip
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    for i in range(STREAM_WORDS):
        yield {**base, "choices": [{"index": 0, "delta": {"content": f"w{i} "}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage:
        yield {**base, "choices": [], "usage": USAGE}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        """Quiet: the suite's output is the tests'."""

    def do_POST(self) -> None:  # noqa: N802  (http.server's name)
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        model = str(request.get("model", ""))
        if model == "rate-limited":
            self._json(429, {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}, {"Retry-After": "1"})
        elif self.path.endswith("/embeddings"):
            data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}]
            self._json(200, {"object": "list", "data": data, "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5}})
        elif request.get("stream"):
            self._stream(RESPONSE_MODEL, usage=bool((request.get("stream_options") or {}).get("include_usage")))
        else:
            self._json(200, _completion(RESPONSE_MODEL, tools=bool(request.get("tools")), usage=not model.endswith("-no-usage")))

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _stream(self, model: str, *, usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        time.sleep(FIRST_CHUNK_S)  # the provider "thinks": what time to first chunk measures
        try:
            for chunk in _chunks(model, usage=usage):
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(CHUNK_GAP_S)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client closed the stream early: what the cancellation scenarios do
        self.close_connection = True


class FakeOpenAI:
    """The server on a free loopback port, in a daemon thread; `with FakeOpenAI() as server:`."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
