"""An OpenAI-compatible chat-completions server on 127.0.0.1, for tests, demos and benchmarks.

It answers `POST /v1/chat/completions` (plain and streamed) from a responder that sees the
request JSON, and can inject the faults real servers produce: 429 with Retry-After, 500,
connection resets, slow answers, truncated JSON and non-JSON bodies. Every request is
recorded (headers minus Authorization) so tests can assert what the client sent.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """A failure to serve instead of an answer."""

    kind: str  # "400", "429", "500", "reset", "slow", "truncated", "not_json", "status"
    retry_after: float | None = None
    delay_s: float = 0.0
    status: int = 500
    """With kind "status": the HTTP status to answer with, and `body` as its JSON."""
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Answer:
    """A successful answer: text content, or one tool call with JSON arguments."""

    content: str = ""
    tool_call: tuple[str, dict[str, Any]] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    """Default: "tool_calls" for a tool call, else "stop"; "length" says the cap was hit."""

    @property
    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_call else "stop")


ServerResponder = Callable[[dict[str, Any]], Answer | Fault]


def requested_schema_name(request: dict[str, Any]) -> str | None:
    """The structured-output schema a request asks for (json_schema or forced tool)."""
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return str(fmt.get("json_schema", {}).get("name"))
    tools = request.get("tools") or []
    if tools:
        return str(tools[0].get("function", {}).get("name"))
    return None


def structured_answer(request: dict[str, Any], payload: dict[str, Any]) -> Answer:
    """Answer `payload` the way the request's structured-output method expects."""
    tools = request.get("tools") or []
    if tools and not request.get("response_format"):
        return Answer(tool_call=(str(tools[0]["function"]["name"]), payload))
    return Answer(content=json.dumps(payload, ensure_ascii=False))


def capped(request: dict[str, Any], answer: Answer, honoured: tuple[str, ...]) -> Answer:
    """`answer` cut to the request's token cap (~4 characters a token), as a server that
    honours the cap parameters in `honoured` would."""
    caps = [request[name] for name in honoured if isinstance(request.get(name), int)]
    if not caps or answer.tool_call is not None or len(answer.content) <= 4 * min(caps):
        return answer
    cap = min(caps)
    return Answer(
        content=answer.content[: 4 * cap],
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=cap,
        finish_reason="length",
    )


@dataclass
class _Shared:
    responder: ServerResponder
    latency_s: float
    honoured_caps: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each small reply waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        shared = self.server.shared
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        try:
            request = json.loads(body)
        except ValueError:
            self._send(400, {"error": {"message": "request body is not JSON"}})
            return
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
        with shared.lock:
            shared.requests.append({"path": self.path, "json": request, "headers": headers})
            fault = shared.faults.pop(0) if shared.faults else None
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        outcome: Answer | Fault = fault or shared.responder(request)
        time.sleep(shared.latency_s)
        if isinstance(outcome, Fault):
            self._fault(outcome)
            return
        outcome = capped(request, outcome, shared.honoured_caps)
        if request.get("stream"):
            self._stream(request, outcome)
        else:
            self._send(200, self._completion(request, outcome))

    def _fault(self, fault: Fault) -> None:
        if fault.kind == "429":
            extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}}, extra)
        elif fault.kind == "400":
            self._send(
                400,
                {
                    "error": {
                        "message": "response_format json_schema is not supported",
                        "type": "invalid_request_error",
                    }
                },
            )
        elif fault.kind == "500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
        elif fault.kind == "status":
            self._send(fault.status, fault.body or {"error": {"message": "error"}})
        elif fault.kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.connection.close()
        elif fault.kind == "slow":
            time.sleep(fault.delay_s)
            self._send(200, {"error": "too late"})
        elif fault.kind == "truncated":
            self._raw(200, b'{"id": "x", "object": "chat.completion", "choices": [{"mess')
        elif fault.kind == "not_json":
            self._raw(200, b"<html>Bad gateway</html>", content_type="text/html")
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    @staticmethod
    def _usage(request: dict[str, Any], answer: Answer, text: str) -> dict[str, int]:
        prompt = answer.prompt_tokens
        if prompt is None:
            prompt = sum(len(str(m.get("content") or "")) for m in request.get("messages", [])) // 4
        completion = answer.completion_tokens
        if completion is None:
            completion = max(1, len(text) // 4)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _message(self, answer: Answer) -> tuple[dict[str, Any], str]:
        if answer.tool_call is not None:
            name, args = answer.tool_call
            arguments = json.dumps(args, ensure_ascii=False)
            return {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }
                ],
            }, arguments
        return {"role": "assistant", "content": answer.content}, answer.content

    def _completion(self, request: dict[str, Any], answer: Answer) -> dict[str, Any]:
        message, text = self._message(answer)
        return {
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "loopback"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": answer.finish,
                }
            ],
            "usage": self._usage(request, answer, text),
        }

    def _stream(self, request: dict[str, Any], answer: Answer) -> None:
        message, text = self._message(answer)
        base = {
            "id": "chatcmpl-loopback",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.get("model", "loopback"),
        }
        delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            delta["tool_calls"] = [{"index": 0, **call}]
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {},
                        "finish_reason": answer.finish,
                    }
                ],
            },
            {**base, "choices": [], "usage": self._usage(request, answer, text)},
        ]
        payload = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
        self._raw(200, payload + b"data: [DONE]\n\n", content_type="text/event-stream")

    def _send(self, status: int, body: dict[str, Any], extra: dict[str, str] | None = None) -> None:
        self._raw(status, json.dumps(body).encode(), extra=extra)

    def _raw(
        self,
        status: int,
        data: bytes,
        *,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    shared: _Shared

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, injected resets) are expected, not errors."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)


class LoopbackOpenAIServer:
    """Context manager running the server on a free 127.0.0.1 port in a background thread.

    `honoured_caps`: the request fields whose token cap the server obeys (llama-cpp-python
    obeys `max_tokens` and ignores `max_completion_tokens`).
    """

    def __init__(
        self,
        responder: ServerResponder,
        *,
        latency_s: float = 0.0,
        honoured_caps: tuple[str, ...] = ("max_completion_tokens", "max_tokens"),
    ) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.shared = _Shared(
            responder=responder, latency_s=latency_s, honoured_caps=honoured_caps
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self._server.shared.requests

    def inject(self, *faults: Fault) -> None:
        """Serve these faults, in order, to the next requests."""
        with self._server.shared.lock:
            self._server.shared.faults.extend(faults)

    def __enter__(self) -> LoopbackOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
