"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 for tests and benchmarks.

It speaks the wire format the official `openai` SDK parses: `POST /v1/chat/completions`
(a JSON `chat.completion`, or with `stream=true` server-sent `chat.completion.chunk` events
ending in `data: [DONE]`) and `GET /v1/models`. It runs its own event loop in a background
thread, so the code under test can use any loop, and it records every request.

```python
with FakeOpenAIServer([Reply.rate_limited(retry_after_s=1), Reply.text("hello")]) as server:
    client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    ...
    assert server.chat_requests[1].arrived_at - server.chat_requests[0].arrived_at >= 1
```

Replies come from the queue first, then from `handler(request_json)`; a request with neither
gets a 500 whose message says so, and is counted in `unscripted`.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import Any

DEFAULT_MODELS = ("gpt-4o-mini",)
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Build it with the class methods rather than by hand."""

    content: str | None = None
    """Assistant message text of a successful completion."""
    status: int = 200
    body: bytes | None = None
    """Raw body sent as is (errors, malformed replies); overrides `content`."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    """Wait this long before sending anything (latency, client timeouts)."""
    usage: Usage | None = None
    """Token counts to report; estimated from the sizes when unset."""
    finish_reason: str = "stop"
    chunk_chars: int = 8
    """Characters per streamed content chunk."""
    chunk_delay_s: float = 0.0
    """Pause between streamed chunks."""

    @classmethod
    def text(
        cls,
        content: str,
        *,
        usage: Usage | None = None,
        delay_s: float = 0.0,
        finish_reason: str = "stop",
        chunk_chars: int = 8,
        chunk_delay_s: float = 0.0,
    ) -> Reply:
        return cls(
            content=content,
            usage=usage,
            delay_s=delay_s,
            finish_reason=finish_reason,
            chunk_chars=max(1, chunk_chars),
            chunk_delay_s=chunk_delay_s,
        )

    @classmethod
    def json(cls, payload: Any, *, usage: Usage | None = None, delay_s: float = 0.0) -> Reply:
        """A completion whose message content is `payload` serialised as JSON."""
        return cls.text(json.dumps(payload), usage=usage, delay_s=delay_s)

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        delay_s: float = 0.0,
    ) -> Reply:
        """An HTTP error with an OpenAI-style `{"error": {...}}` body."""
        kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "error", None))
        phrase = message or f"scripted {status} from the test server"
        body = {"error": {"message": phrase, "type": kind, "param": None, "code": code}}
        return cls(
            status=status,
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json", **(headers or {})},
            delay_s=delay_s,
        )

    @classmethod
    def rate_limited(
        cls, retry_after_s: float | None = None, *, retry_after_ms: int | None = None
    ) -> Reply:
        """A 429; `retry_after_s` is sent as `Retry-After` (whole seconds when integral)."""
        headers: dict[str, str] = {}
        if retry_after_s is not None:
            seconds = int(retry_after_s) if float(retry_after_s).is_integer() else retry_after_s
            headers["retry-after"] = str(seconds)
        if retry_after_ms is not None:
            headers["retry-after-ms"] = str(retry_after_ms)
        return cls.error(429, "Rate limit reached for requests", headers=headers)

    @classmethod
    def malformed(
        cls, body: bytes = b'{"id": "chatcmpl-broken", "choices": [{', *, delay_s: float = 0.0
    ) -> Reply:
        """A 200 whose body is not the JSON it claims to be."""
        return cls(body=body, headers={"content-type": "application/json"}, delay_s=delay_s)


Handler = Callable[[dict[str, Any]], Reply]


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names."""
    raw_body: bytes
    body: Any
    """The parsed JSON body, or None when there was none or it was not JSON."""
    arrived_at: float
    """`time.monotonic()` when the whole request had been read."""
    status: int | None = None
    finished_at: float | None = None
    disconnected: bool = False
    """The client hung up before the reply was sent (e.g. its timeout fired)."""


class FakeOpenAIServer:
    """A scripted OpenAI-compatible server; use it as a context manager or call start/stop."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        handler: Handler | None = None,
        models: Iterable[str] = DEFAULT_MODELS,
    ) -> None:
        self.handler = handler
        self.models = list(models)
        self.port = 0
        self.handler_errors: list[BaseException] = []
        self.unscripted = 0
        self._queue: deque[Reply] = deque(replies)
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._max_in_flight = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._start_error: BaseException | None = None

    # -- control -------------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="fake-openai-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError("the fake OpenAI server failed to start") from self._start_error
        return self

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` to the `openai` client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._queue)

    # -- what happened -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was working on at the same moment."""
        with self._lock:
            return self._max_in_flight

    # -- the server loop -----------------------------------------------------------------

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:  # surfaced to start() when it happens before ready
            self._start_error = exc
            ready.set()
        finally:
            loop.close()

    async def _main(self, ready: threading.Event) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve_connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                keep_alive = await self._dispatch(request, reader, writer)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # the server is stopping; ending quietly keeps asyncio from reporting the task
            return
        finally:
            writer.close()
            if task is not None:
                self._connections.discard(task)

    async def _dispatch(
        self,
        request: tuple[str, str, dict[str, str], bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        method, path, headers, raw = request
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(
            method=method,
            path=path,
            headers=headers,
            raw_body=raw,
            body=body,
            arrived_at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(record)
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        keep_alive = headers.get("connection", "").lower() != "close"
        try:
            route = path.split("?", 1)[0].rstrip("/")
            if method == "GET" and route.endswith("/models"):
                record.status = 200
                await _send(writer, 200, _json_headers(), json.dumps(self._models_body()).encode())
            elif method == "POST" and route.endswith("/chat/completions"):
                if not isinstance(body, dict):
                    reply = Reply.error(400, "the request body is not a JSON object")
                else:
                    reply = self._next_reply(body)
                if reply.delay_s > 0 and await _client_left_during(reader, reply.delay_s):
                    record.disconnected = True
                    return False
                record.status = reply.status
                await self._send_reply(writer, body if isinstance(body, dict) else {}, reply)
            else:
                record.status = 404
                reply = Reply.error(404, f"no route for {method} {path} on the test server")
                await _send(writer, 404, dict(reply.headers), reply.body or b"")
        except ConnectionError:
            record.disconnected = True
            return False
        finally:
            with self._lock:
                self._in_flight -= 1
            record.finished_at = time.monotonic()
        return keep_alive

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.handler is not None:
            try:
                return self.handler(body)
            except Exception as exc:
                self.handler_errors.append(exc)
                return Reply.error(500, f"the test handler raised {type(exc).__name__}: {exc}")
        with self._lock:
            self.unscripted += 1
        return Reply.error(500, "the test server has no scripted reply left for this request")

    def _models_body(self) -> dict[str, Any]:
        created = int(time.time())
        return {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": created, "owned_by": "coachloop-tests"}
                for m in self.models
            ],
        }

    async def _send_reply(
        self, writer: asyncio.StreamWriter, request: dict[str, Any], reply: Reply
    ) -> None:
        if reply.body is not None or reply.status != 200:
            headers = {"content-type": "application/json", **reply.headers}
            await _send(writer, reply.status, _base_headers() | headers, reply.body or b"")
            return

        content = reply.content or ""
        usage = reply.usage or Usage(
            prompt_tokens=max(1, len(json.dumps(request.get("messages", []))) // 4),
            completion_tokens=max(1, len(content) // 4),
        )
        model = str(request.get("model") or self.models[0])
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if request.get("stream"):
            options = request.get("stream_options") or {}
            await _send_stream(
                writer,
                completion_id=completion_id,
                model=model,
                reply=reply,
                content=content,
                usage=usage if options.get("include_usage") else None,
            )
            return

        payload = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_coachloop_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": usage.as_dict(),
        }
        headers = _json_headers() | dict(reply.headers)
        await _send(writer, 200, headers, json.dumps(payload).encode())


# -- HTTP/1.1 plumbing ---------------------------------------------------------------------


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readline()).split(b";", 1)[0].strip(), 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readline()
        body = b"".join(parts)
    else:
        body = b""
    return method, target, headers, body


async def _client_left_during(reader: asyncio.StreamReader, delay_s: float) -> bool:
    """Sleep `delay_s`; return True early if the client closes the connection meanwhile.

    Clients of this server do not pipeline, so nothing else arrives while a reply is pending.
    """
    eof = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({eof}, timeout=delay_s)
        return eof in done and (eof.exception() is not None or eof.result() == b"")
    finally:
        if not eof.done():
            eof.cancel()
            await asyncio.gather(eof, return_exceptions=True)


def _base_headers() -> dict[str, str]:
    return {
        "date": email.utils.formatdate(usegmt=True),
        "server": "coachloop-fake-openai",
        "x-request-id": f"req_{uuid.uuid4().hex}",
        "openai-processing-ms": "1",
    }


def _json_headers() -> dict[str, str]:
    return _base_headers() | {"content-type": "application/json"}


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send(
    writer: asyncio.StreamWriter, status: int, headers: Mapping[str, str], body: bytes
) -> None:
    headers = {**headers, "content-length": str(len(body)), "connection": "keep-alive"}
    writer.write(_head(status, headers) + body)
    await writer.drain()


async def _send_stream(
    writer: asyncio.StreamWriter,
    *,
    completion_id: str,
    model: str,
    reply: Reply,
    content: str,
    usage: Usage | None,
) -> None:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        event: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_coachloop_fake",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if usage is not None:
            event["usage"] = None
        return event

    async def write_event(data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        writer.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        await writer.drain()

    headers = _base_headers() | {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        "transfer-encoding": "chunked",
        "connection": "keep-alive",
        **reply.headers,
    }
    writer.write(_head(200, headers))
    await write_event(
        json.dumps(chunk({"role": "assistant", "content": "", "refusal": None}, None))
    )
    step = reply.chunk_chars
    for start in range(0, len(content), step):
        if reply.chunk_delay_s > 0:
            await asyncio.sleep(reply.chunk_delay_s)
        await write_event(json.dumps(chunk({"content": content[start : start + step]}, None)))
    await write_event(json.dumps(chunk({}, reply.finish_reason)))
    if usage is not None:
        final = chunk({}, None) | {"choices": [], "usage": usage.as_dict()}
        await write_event(json.dumps(final))
    await write_event("[DONE]")
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def careful_judge(latency_s: float = 0.0) -> Handler:
    """A handler that answers the LLM judge like a careful model: the schema it asked for,
    quotes copied verbatim from the transcript, checks observed or not by a hash of the call.
    """

    def handler(body: dict[str, Any]) -> Reply:
        system = next(m["content"] for m in body["messages"] if m["role"] == "system")
        speakers = {
            check_id: "customer" if who == "the customer" else "agent"
            for check_id, who in re.findall(r"`(\w+)` \([^;)]*; words by ([a-z ]+)\)", system)
        }
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        start = user.index("\n", user.index("<<<TRANSCRIPT ")) + 1
        turns = json.loads(user[start : user.index("\n<<<END TRANSCRIPT ", start)])
        first = {
            "agent": next(t for t in turns if t["speaker"] == "agent"),
            "customer": next(t for t in turns if t["speaker"] == "customer"),
        }
        schema = body["response_format"]["json_schema"]["schema"]
        criteria: dict[str, Any] = {}
        for cid, spec in schema["properties"]["criteria"]["properties"].items():
            checks = {}
            for check_id in spec["properties"]["checks"]["properties"]:
                seed = hashlib.sha256(f"{check_id}:{turns[0]['text']}".encode()).digest()[0]
                speaker = speakers.get(check_id, "agent")
                turn = first[speaker]
                if seed % 3:
                    quote = " ".join(turn["text"].split()[:5])
                    checks[check_id] = {"observed": True, "turn": turn["turn"], "quote": quote}
                else:
                    checks[check_id] = {"observed": False, "turn": None, "quote": None}
            criteria[cid] = {"checks": checks, "rationale": None}
        usage = Usage(prompt_tokens=len(user) // 4, completion_tokens=180)
        return Reply.json({"criteria": criteria}, usage=usage, delay_s=latency_s)

    return handler
