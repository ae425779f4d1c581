"""A small Slack Web API on 127.0.0.1 that records what was sent, for tests and benchmarks.

It answers the methods coachloop calls the way Slack does: `POST /api/<method>` with a form
or JSON body and a bearer token, `{"ok": true, ...}` on success, `{"ok": false, "error": ...}`
with HTTP 200 on an API error, and HTTP 429 with `Retry-After` when rate limited. Posted
messages are kept per channel, with their metadata, so `conversations.history` can answer.
It also serves the upload URLs of `files.getUploadURLExternal` and slash-command
`response_url`s, and Socket Mode: `apps.connections.open` (with an `xapp-` token) hands out a
`ws://` URL on the same server, which greets each connection with `hello`, sends the
envelopes a test queues with `send_envelope`, and records the acknowledgements.

```python
with FakeSlackApi() as slack:
    client = AsyncWebClient(token="xoxb-test", base_url=slack.base_url)
    ...
    assert slack.calls_to("chat.postMessage")[0].body["channel"] == "DU1"
```
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

BOT_USER_ID = "UCOACHBOT"


@dataclass
class RecordedCall:
    method: str
    body: dict[str, Any]
    token: str | None
    arrived_at: float
    status: int = 200
    error: str | None = None


@dataclass
class RateLimit:
    """At most `limit` calls of `method` in any `window_s`; more get a 429."""

    method: str
    limit: int
    window_s: float
    retry_after_s: int = 1
    per_channel: bool = False


@dataclass
class _State:
    calls: list[RecordedCall] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    faults: dict[str, deque[tuple[int, str, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    user_errors: dict[str, str] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    response_arrivals: list[tuple[str, float]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    limits: list[RateLimit] = field(default_factory=list)
    accepted_at: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))
    rate_limited: int = 0
    acks: list[dict[str, Any]] = field(default_factory=list)
    socket_connections: int = 0
    envelope_sent_at: dict[str, float] = field(default_factory=dict)
    ack_arrived_at: dict[str, float] = field(default_factory=dict)


class FakeSlackApi:
    def __init__(self, *, users: dict[str, dict[str, Any]] | None = None) -> None:
        self._state = _State()
        self._users = users or {}
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._last_ts = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._envelopes: asyncio.Queue[dict[str, Any]] | None = None
        self._envelope_ids = itertools.count(1)
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeSlackApi:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Slack API did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeSlackApi:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What `WebClient(base_url=...)` takes: the API root with a trailing slash."""
        return f"{self.root_url}/api/"

    # -- scripting ------------------------------------------------------------------------

    def fail_next(self, method: str, error: str, *, status: int = 200, **headers: str) -> None:
        """The next call of `method` gets `error` (HTTP `status`, e.g. 500 or 429)."""
        with self._lock:
            self._state.faults[method].append((status, error, headers))

    def rate_limit_next(self, method: str, retry_after_s: int = 1) -> None:
        self.fail_next(method, "ratelimited", status=429, **{"Retry-After": str(retry_after_s)})

    def fail_for_user(self, user_id: str, error: str) -> None:
        """Every DM to `user_id` fails with `error` (e.g. `user_not_found`, `cannot_dm_bot`)."""
        with self._lock:
            self._state.user_errors[user_id] = error

    def enforce(self, limit: RateLimit) -> None:
        with self._lock:
            self._state.limits.append(limit)

    # -- inspection -----------------------------------------------------------------------

    @property
    def calls(self) -> list[RecordedCall]:
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str, *, ok_only: bool = False) -> list[RecordedCall]:
        return [
            c
            for c in self.calls
            if c.method == method and (not ok_only or (c.status == 200 and c.error is None))
        ]

    def messages(self, channel: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.messages.get(channel, []))

    @property
    def all_messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for msgs in self._state.messages.values() for m in msgs]

    @property
    def responses(self) -> list[tuple[str, dict[str, Any]]]:
        """Bodies posted to slash-command response URLs, as (token, body)."""
        with self._lock:
            return list(self._state.responses)

    @property
    def response_arrivals(self) -> list[tuple[str, float]]:
        """(token, `time.monotonic()`) of each post to a response URL, in arrival order."""
        with self._lock:
            return list(self._state.response_arrivals)

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._state.views)

    @property
    def uploads(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._state.uploads)

    @property
    def rate_limited(self) -> int:
        """How many calls this server answered with 429 because a limit was exceeded."""
        with self._lock:
            return self._state.rate_limited

    @property
    def acks(self) -> list[dict[str, Any]]:
        """What the app answered to Socket Mode envelopes (`envelope_id`, maybe `payload`)."""
        with self._lock:
            return list(self._state.acks)

    def envelope_timing(self, envelope_id: str) -> tuple[float, float] | None:
        """(sent, acknowledged) `time.monotonic()` of an envelope, once it is acknowledged."""
        with self._lock:
            sent = self._state.envelope_sent_at.get(envelope_id)
            acked = self._state.ack_arrived_at.get(envelope_id)
        return (sent, acked) if sent is not None and acked is not None else None

    @property
    def socket_connections(self) -> int:
        """Socket Mode connections opened so far."""
        with self._lock:
            return self._state.socket_connections

    def send_envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = True
    ) -> str:
        """Queue a Socket Mode envelope (`slash_commands`, `events_api`, `interactive`) for
        the newest connection; returns its `envelope_id`."""
        assert self._loop is not None and self._envelopes is not None
        envelope_id = f"env-{next(self._envelope_ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            envelope.update(retry_attempt=0, retry_reason="")
        self._loop.call_soon_threadsafe(self._envelopes.put_nowait, envelope)
        return envelope_id

    def refresh_socket(self) -> None:
        """Ask the connected app to reconnect, as Slack does every few hours."""
        assert self._loop is not None and self._envelopes is not None
        self._loop.call_soon_threadsafe(
            self._envelopes.put_nowait, {"type": "disconnect", "reason": "refresh_requested"}
        )

    def response_url(self, token: str = "cmd") -> str:
        return f"{self.root_url}/response/{token}"

    # -- server ---------------------------------------------------------------------------

    def _next_ts(self) -> str:
        """A message timestamp as Slack makes them: the wall clock, unique per workspace."""
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _run(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/response/{token}", self._response)
        app.router.add_get("/socket-mode", self._socket_mode)
        self._envelopes = asyncio.Queue()
        app.on_shutdown.append(self._close_sockets)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        ready.set()
        self._loop.run_forever()

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if not raw:
            return dict(request.query)
        if request.query:
            return {**dict(parse_qsl(raw.decode())), **dict(request.query)}
        if request.content_type == "application/json":
            loaded = json.loads(raw)
            return loaded if isinstance(loaded, dict) else {}
        body: dict[str, Any] = dict(parse_qsl(raw.decode()))
        for key in ("blocks", "metadata", "view", "files", "attachments"):
            if isinstance(body.get(key), str):
                try:
                    body[key] = json.loads(body[key])
                except json.JSONDecodeError:
                    pass
        return body

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await self._read_body(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else body.get("token")
        now = time.monotonic()
        call = RecordedCall(method=method, body=body, token=token, arrived_at=now)
        with self._lock:
            self._state.calls.append(call)
            fault = self._state.faults[method].popleft() if self._state.faults[method] else None
            limited = fault is None and self._exceeds_limit(method, body, now)
            if limited:
                self._state.rate_limited += 1
        if limited:
            call.status, call.error = 429, "ratelimited"
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        if fault is not None:
            status, error, headers = fault
            call.status, call.error = status, error
            return web.json_response({"ok": False, "error": error}, status=status, headers=headers)
        if not token:
            call.error = "not_authed"
            return web.json_response({"ok": False, "error": "not_authed"})
        try:
            result = self._handle(method, body, token)
        except _ApiError as exc:
            call.error = exc.error
            return web.json_response({"ok": False, "error": exc.error})
        return web.json_response({"ok": True, **result})

    def _exceeds_limit(self, method: str, body: dict[str, Any], now: float) -> bool:
        for limit in self._state.limits:
            if limit.method != method:
                continue
            key = f"{method}:{body.get('channel', '') if limit.per_channel else ''}"
            seen = self._state.accepted_at[key]
            while seen and now - seen[0] > limit.window_s:
                seen.popleft()
            if len(seen) >= limit.limit:
                return True
            seen.append(now)
        return False

    def _handle(self, method: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
        with self._lock:
            if method == "auth.test":
                return {
                    "user_id": BOT_USER_ID,
                    "team_id": "T0HARBOR",
                    "bot_id": "B0COACH",
                    "url": "https://harbor.example.slack.com/",
                    "team": "Harbor",
                    "user": "coachloop",
                }
            if method == "apps.connections.open":
                if not str(token or "").startswith("xapp-"):
                    raise _ApiError("not_allowed_token_type")
                ticket = next(self._ts)
                return {"url": f"ws://127.0.0.1:{self.port}/socket-mode?ticket={ticket}"}
            if method == "conversations.open":
                users = str(body.get("users", "")).split(",")[0]
                if users in self._state.user_errors:
                    raise _ApiError(self._state.user_errors[users])
                return {"channel": {"id": f"D{users}"}}
            if method in {"chat.postMessage", "chat.postEphemeral"}:
                channel = str(body.get("channel", ""))
                user = channel[1:] if channel.startswith("D") else channel
                if user in self._state.user_errors:
                    raise _ApiError(self._state.user_errors[user])
                if not channel:
                    raise _ApiError("channel_not_found")
                if not body.get("text") and not body.get("blocks"):
                    raise _ApiError("no_text")
                ts = self._next_ts()
                message = {"type": "message", "ts": ts, "user": BOT_USER_ID, **body}
                if method == "chat.postMessage":
                    self._state.messages[channel].append(message)
                    return {"channel": channel, "ts": ts, "message": message}
                return {"message_ts": ts}
            if method == "chat.update":
                for message in self._state.messages.get(str(body.get("channel")), []):
                    if message["ts"] == body.get("ts"):
                        message.update(body)
                        return {"channel": body["channel"], "ts": body["ts"]}
                raise _ApiError("message_not_found")
            if method == "conversations.history":
                channel = str(body.get("channel", ""))
                oldest = float(body.get("oldest", 0) or 0)
                msgs = [
                    m
                    for m in self._state.messages.get(channel, [])
                    if float(m["ts"]) > oldest and m.get("thread_ts") in (None, m["ts"])
                ]  # like Slack: thread replies are not in the channel's history
                if str(body.get("include_all_metadata", "")).lower() not in {"true", "1"}:
                    msgs = [{k: v for k, v in m.items() if k != "metadata"} for m in msgs]
                return {"messages": list(reversed(msgs)), "has_more": False}
            if method == "conversations.replies":
                channel, ts = str(body.get("channel")), str(body.get("ts"))
                msgs = [
                    m
                    for m in self._state.messages.get(channel, [])
                    if m["ts"] == ts or m.get("thread_ts") == ts
                ]
                return {"messages": msgs, "has_more": False}
            if method == "views.publish":
                self._state.views[str(body.get("user_id"))] = body.get("view", {})
                return {"view": {"id": "V1", **(body.get("view") or {})}}
            if method == "views.open":
                return {"view": {"id": "V2", **(body.get("view") or {})}}
            if method == "users.lookupByEmail":
                wanted = str(body.get("email", "")).strip().lower()
                for user_id, known in self._users.items():
                    if str((known.get("profile") or {}).get("email", "")).lower() == wanted:
                        return {"user": {"id": user_id, **known}}
                raise _ApiError("users_not_found")
            if method == "users.info":
                user = str(body.get("user"))
                if user not in self._users:
                    raise _ApiError("user_not_found")
                return {"user": {"id": user, **self._users[user]}}
            if method == "files.getUploadURLExternal":
                file_id = f"F{next(self._ts):06d}"
                return {"upload_url": f"{self.root_url}/upload/{file_id}", "file_id": file_id}
            if method == "files.completeUploadExternal":
                files = body.get("files") or []
                if isinstance(files, str):
                    files = json.loads(files)
                missing = [f["id"] for f in files if f["id"] not in self._state.uploads]
                if missing:
                    raise _ApiError("file_not_found")
                channel = str(body.get("channel_id") or body.get("channels") or "")
                if channel:
                    ts = self._next_ts()
                    self._state.messages[channel].append(
                        {
                            "type": "message",
                            "ts": ts,
                            "user": BOT_USER_ID,
                            "files": files,
                            "text": body.get("initial_comment", ""),
                            "thread_ts": body.get("thread_ts"),
                        }
                    )
                return {"files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        raise _ApiError("unknown_method")

    async def _upload(self, request: web.Request) -> web.Response:
        data = await request.read()
        with self._lock:
            self._state.uploads[request.match_info["file_id"]] = data
        return web.Response(text=f"OK - {len(data)}")

    async def _response(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        body = await self._read_body(request)
        with self._lock:
            self._state.responses.append((request.match_info["token"], body))
            self._state.response_arrivals.append((request.match_info["token"], arrived))
        return web.Response(text="ok")

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        """One Socket Mode connection: `hello`, then queued envelopes out and acks in.

        Pings from the client are answered with pongs by aiohttp (autoping)."""
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        with self._lock:
            self._state.socket_connections += 1
            number = self._state.socket_connections
        self._sockets.append(socket)
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": f"applink-{number}", "approximate_connection_time": 18060},
                "connection_info": {"app_id": "A0COACH"},
            }
        )
        sender = asyncio.create_task(self._send_envelopes(socket))
        try:
            async for message in socket:
                if message.type != WSMsgType.TEXT:
                    continue
                arrived = time.monotonic()
                answer = json.loads(message.data)
                with self._lock:
                    self._state.acks.append(answer)
                    self._state.ack_arrived_at[str(answer.get("envelope_id"))] = arrived
        finally:
            sender.cancel()
            self._sockets.remove(socket)
        return socket

    async def _send_envelopes(self, socket: web.WebSocketResponse) -> None:
        assert self._envelopes is not None
        while not socket.closed:
            envelope = await self._envelopes.get()
            if socket.closed or self._sockets[-1] is not socket:
                self._envelopes.put_nowait(envelope)  # for the newer connection
                await asyncio.sleep(0.01)
                continue
            if "envelope_id" in envelope:
                with self._lock:
                    self._state.envelope_sent_at[envelope["envelope_id"]] = time.monotonic()
            await socket.send_json(envelope)
            if envelope.get("type") == "disconnect":
                return

    async def _close_sockets(self, _: web.Application) -> None:
        for socket in list(self._sockets):
            await socket.close()


class _ApiError(Exception):
    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
