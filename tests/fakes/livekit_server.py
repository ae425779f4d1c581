"""The agent side of a LiveKit server on 127.0.0.1, for testing workers without one.

LiveKit workers connect over a WebSocket to `<url>/agent` with a bearer JWT signed by the API
secret (issuer = the API key, `video.agent` = true), and exchange binary protobuf messages
from `livekit.protocol.agent`: the worker sends `WorkerMessage`s, the server `ServerMessage`s.
This fake speaks that protocol:

- it refuses a connection whose token is not signed with the secret, or lacks the agent
  grant, with HTTP 401 (and records the refusal);
- it answers `register` with a `RegisterWorkerResponse` (a worker id and server info), and
  `ping` with `pong`;
- a test offers a job with `offer_job` (an `AvailabilityRequest`) and gets the worker's
  `AvailabilityResponse`; `assign` sends the `JobAssignment` the server sends after an accept;
- every message a worker sends is kept, per worker, in order.

Rooms and media are not served (no WebRTC here), but the signal endpoint a client joins
through (`/rtc`, `/rtc/v1`, and their `/validate`) checks the client's token (the
`access_token` parameter or a bearer header) like a server would, records the join attempt
with the token's claims, and then refuses it with HTTP 403 and `ROOMS_REFUSAL`: a test sees
which token a page or a job process joined with.

```python
async with FakeLiveKitServer(api_key="APIkey", api_secret="secret") as livekit:
    ...  # start a worker with url=livekit.url
    worker = await livekit.next_worker()
    answer = await livekit.offer_job(worker, job)
```
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import jwt
from aiohttp import WSMsgType, web
from livekit.protocol import agent as agent_pb, models

SERVER_VERSION = "1.9.0-coachloop-fake"
WAIT_S = 20
"""How long a test waits for a worker to connect, register or answer."""
ROOMS_REFUSAL = "this test server has no media: rooms cannot be joined here"


@dataclass
class ConnectedWorker:
    """One worker connection: its registration, its token's claims and what it sent."""

    worker_id: str
    claims: dict[str, Any]
    register: agent_pb.RegisterWorkerRequest | None = None
    messages: list[agent_pb.WorkerMessage] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _ws: web.WebSocketResponse | None = None
    _answers: dict[str, asyncio.Future[agent_pb.AvailabilityResponse]] = field(default_factory=dict)
    _registered: asyncio.Event = field(default_factory=asyncio.Event)

    def sent(self, kind: str) -> list[agent_pb.WorkerMessage]:
        """Messages of one kind (`update_worker`, `availability`, `update_job`, ...)."""
        return [m for m in self.messages if m.WhichOneof("message") == kind]

    def statuses(self) -> list[int]:
        return [m.update_worker.status for m in self.sent("update_worker")]


@dataclass
class Refusal:
    reason: str
    authorization: str | None


@dataclass
class JoinAttempt:
    """A client's try to join a room through the signal endpoint."""

    path: str
    claims: dict[str, Any] | None
    """The verified token's claims; None when the token was missing or invalid."""
    problem: str | None = None


class FakeLiveKitServer:
    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        host: str = "127.0.0.1",
        region: str = "local",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.region = region
        self._host = host
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self.workers: list[ConnectedWorker] = []
        self.refusals: list[Refusal] = []
        self.joins: list[JoinAttempt] = []
        self._arrivals: asyncio.Queue[ConnectedWorker] = asyncio.Queue()
        self._refused = asyncio.Event()

    @property
    def url(self) -> str:
        return f"ws://{self._host}:{self._port}"

    async def __aenter__(self) -> FakeLiveKitServer:
        app = web.Application()
        app.router.add_get("/agent", self._agent)
        for path in ("/rtc", "/rtc/v1", "/rtc/validate", "/rtc/v1/validate"):
            app.router.add_get(path, self._rtc)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for worker in self.workers:
            if worker._ws is not None and not worker._ws.closed:
                await worker._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what tests call ------------------------------------------------------------------

    async def next_worker(self) -> ConnectedWorker:
        """The next worker that connects and registers."""
        worker = await asyncio.wait_for(self._arrivals.get(), WAIT_S)
        await asyncio.wait_for(worker._registered.wait(), WAIT_S)
        return worker

    async def next_refusal(self) -> Refusal:
        await asyncio.wait_for(self._refused.wait(), WAIT_S)
        self._refused.clear()
        return self.refusals[-1]

    async def offer_job(
        self, worker: ConnectedWorker, job: agent_pb.Job
    ) -> agent_pb.AvailabilityResponse:
        """Ask the worker whether it takes `job`, as the server does on a dispatch."""
        assert worker._ws is not None
        answer: asyncio.Future[agent_pb.AvailabilityResponse] = (
            asyncio.get_running_loop().create_future()
        )
        worker._answers[job.id] = answer
        message = agent_pb.ServerMessage(
            availability=agent_pb.AvailabilityRequest(job=job, resuming=False)
        )
        await worker._ws.send_bytes(message.SerializeToString())
        return await asyncio.wait_for(answer, WAIT_S)

    async def assign(self, worker: ConnectedWorker, job: agent_pb.Job, *, token: str) -> None:
        """Hand an accepted job to the worker, with the agent's join token."""
        assert worker._ws is not None
        message = agent_pb.ServerMessage(
            assignment=agent_pb.JobAssignment(job=job, url=self.url, token=token)
        )
        await worker._ws.send_bytes(message.SerializeToString())

    def room_job(
        self,
        room_name: str,
        *,
        agent_name: str,
        dispatch_metadata: str = "",
        room_metadata: str = "",
        publisher: models.ParticipantInfo | None = None,
    ) -> agent_pb.Job:
        """The job the server makes for an agent dispatch to a room."""
        n = next(self._ids)
        job = agent_pb.Job(
            id=f"AJ_fake{n:04d}",
            dispatch_id=f"AD_fake{n:04d}",
            type=agent_pb.JobType.JT_ROOM,
            room=models.Room(
                sid=f"RM_fake{n:04d}",
                name=room_name,
                metadata=room_metadata,
                creation_time=int(time.time()),
            ),
            agent_name=agent_name,
            metadata=dispatch_metadata,
        )
        if publisher is not None:
            job.participant.CopyFrom(publisher)
        return job

    # -- the wire -------------------------------------------------------------------------

    def _claims(self, token: str) -> dict[str, Any] | str:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.api_secret,
                algorithms=["HS256"],
                issuer=self.api_key,
                options={"require": ["exp", "iss"]},
            )
        except jwt.InvalidTokenError as exc:
            return f"invalid token: {type(exc).__name__}"
        return claims

    async def _rtc(self, request: web.Request) -> web.StreamResponse:
        # browsers call these from the web app's pages: like LiveKit, allow any origin
        cors = {"Access-Control-Allow-Origin": "*"}
        # browsers send the token as a query parameter, server SDKs as a bearer header
        header = request.headers.get("Authorization", "")
        token = request.query.get("access_token") or header.removeprefix("Bearer ") or None
        claims = self._claims(token) if token else "no access_token"
        if isinstance(claims, str):
            self.joins.append(JoinAttempt(request.path, None, problem=claims))
            return web.Response(status=401, text=claims, headers=cors)
        self.joins.append(JoinAttempt(request.path, claims))
        return web.Response(status=403, text=ROOMS_REFUSAL, headers=cors)

    def _verify(self, request: web.Request) -> dict[str, Any] | str:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "no bearer token"
        claims = self._claims(header[7:])
        if isinstance(claims, str):
            return claims
        if not claims.get("video", {}).get("agent"):
            return "token has no agent grant"
        return claims

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        verified = self._verify(request)
        if isinstance(verified, str):
            self.refusals.append(Refusal(verified, request.headers.get("Authorization")))
            self._refused.set()
            return web.Response(status=401, text=verified)

        ws = web.WebSocketResponse()
        await ws.prepare(request)
        worker = ConnectedWorker(worker_id=f"AW_fake{next(self._ids):04d}", claims=verified)
        worker._ws = ws
        self.workers.append(worker)
        await self._arrivals.put(worker)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.BINARY:
                    continue
                message = agent_pb.WorkerMessage.FromString(frame.data)
                worker.messages.append(message)
                await self._handle(worker, ws, message)
        finally:
            worker.closed.set()
        return ws

    async def _handle(
        self, worker: ConnectedWorker, ws: web.WebSocketResponse, message: agent_pb.WorkerMessage
    ) -> None:
        kind = message.WhichOneof("message")
        if kind == "register":
            worker.register = message.register
            reply = agent_pb.ServerMessage(
                register=agent_pb.RegisterWorkerResponse(
                    worker_id=worker.worker_id,
                    server_info=models.ServerInfo(
                        edition=models.ServerInfo.Edition.Standard,
                        version=SERVER_VERSION,
                        protocol=16,
                        region=self.region,
                        node_id="ND_fake",
                    ),
                )
            )
            await ws.send_bytes(reply.SerializeToString())
            worker._registered.set()
        elif kind == "ping":
            pong = agent_pb.ServerMessage(
                pong=agent_pb.WorkerPong(
                    last_timestamp=message.ping.timestamp, timestamp=int(time.time() * 1000)
                )
            )
            await ws.send_bytes(pong.SerializeToString())
        elif kind == "availability":
            answer = worker._answers.pop(message.availability.job_id, None)
            if answer is not None and not answer.done():
                answer.set_result(message.availability)


@contextmanager
def fake_livekit_in_thread(*, api_key: str, api_secret: str) -> Iterator[FakeLiveKitServer]:
    """The fake on its own event loop in a thread, for tests that are not async (browsers)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-livekit", daemon=True)
    thread.start()

    async def start() -> FakeLiveKitServer:
        return await FakeLiveKitServer(api_key=api_key, api_secret=api_secret).__aenter__()

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(WAIT_S)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), loop).result(WAIT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT_S)
        loop.close()
