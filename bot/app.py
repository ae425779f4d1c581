"""The Slack app: the Bolt app, and the process that serves it with the delivery worker.

```python
app = build_app(engine=engine, settings=settings.slack, rubrics=rubrics, ...)
await serve(engine=engine, settings=settings, rubrics=rubrics, ...)   # a process of its own
attach(web_app, engine=engine, settings=settings, ...)               # inside the web app
```

Socket Mode when an app token is set (no public URL needed); otherwise HTTP mode, with
Slack's requests verified by the signing secret at `/slack/events`, under uvicorn or on the
web app's own server. Either way the outbox delivery worker runs beside it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine

from bot.delivery import DeliveryOptions, DeliveryWorker, UndeliveredReport, undelivered_report
from bot.listeners import register
from bot.services import Services
from coaching.catalogue import ScenarioCatalogue
from coaching.graph import CoachingPipeline, open_pipeline
from config.coaching import CoachingRules
from config.rubric import RubricLibrary
from config.settings import Settings, SlackSettings
from evaluators.base import Judge
from scenarios import PracticeDriver, ScenarioLibrary
from store.models import utcnow

logger = logging.getLogger(__name__)

MANIFEST = Path(__file__).parent / "manifest.yaml"


class BotConfigError(Exception):
    """The Slack settings cannot run the app; the message names the setting to fix."""


_CARRIES_CONTENT = re.compile(r"body|payload|\{['\"]")
_EVENT_END = re.compile(r" \(| \{|: ")


class _BoltContentFilter(logging.Filter):
    """Bolt logs some requests whole (an invalid signature, an unhandled request), and the
    Web API client its calls at debug level: their bodies carry message text and people's
    names, so the text moves under `pii.detail` and the record keeps its opening phrase."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CARRIES_CONTENT.search(message):
            cut = _EVENT_END.search(message)
            record.msg = message[: cut.start()] if cut else "slack request logged"
            record.args = None
            record.__dict__["pii.detail"] = message
        return True


def _filtered(name: str) -> logging.Logger:
    found = logging.getLogger(name)
    if not any(isinstance(f, _BoltContentFilter) for f in found.filters):
        found.addFilter(_BoltContentFilter())
    return found


def bolt_logger() -> logging.Logger:
    """The base logger handed to Bolt: its listeners' and middleware's loggers copy its
    filter, so request bodies never reach the log outside `pii.` fields."""
    return _filtered("slack_bolt")


def web_client(slack: SlackSettings, *, retries: bool = True) -> AsyncWebClient:
    """A Web API client with the bot token, pointed at `api_base_url` when one is set.

    With `retries`, rate limits, server errors and dropped connections are retried by the
    client (right for interactive replies); the delivery worker retries by itself instead.
    """
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    handlers = (
        [
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=1),
        ]
        if retries
        else []
    )
    quiet = _filtered("slack_sdk.web.async_base_client")
    if slack.api_base_url:
        return AsyncWebClient(
            token=token, base_url=slack.api_base_url, retry_handlers=handlers, logger=quiet
        )
    return AsyncWebClient(token=token, retry_handlers=handlers, logger=quiet)


def build_app(
    *,
    engine: Engine,
    settings: SlackSettings,
    rubrics: RubricLibrary | None = None,
    rules: CoachingRules | None = None,
    practice: PracticeDriver | None = None,
    pipeline: CoachingPipeline | None = None,
    titles: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utcnow,
    chart: bool = True,
) -> AsyncApp:
    """The Bolt app with every listener registered.

    Args:
        engine: The database.
        settings: Token, signing secret, API address and the web app's address.
        rubrics: The organisation's rubrics; scenario titles come from `practice` when given.
        rules: Coaching rules for thresholds (default: the shipped ones).
        practice: The practice driver for text roleplay in DM threads; None turns it off.
        pipeline: The coaching pipeline, for Approve / Decline; None turns them off.
        titles: Scenario titles by slug (default: from the practice library).
        clock: The time now.
        chart: Draw and upload the `/team-gaps` trend chart.
    """
    if settings.bot_token is None:
        raise BotConfigError("The Slack app needs a bot token; set COACHLOOP_SLACK__BOT_TOKEN")
    if titles is None and practice is not None:
        titles = {s.slug: s.title for s in practice.library.all()}
    secret = settings.signing_secret.get_secret_value() if settings.signing_secret else ""
    app = AsyncApp(
        client=web_client(settings),
        logger=bolt_logger(),
        signing_secret=secret,
        process_before_response=False,
        # an HTTP-mode app without a secret would refuse every request; say so at start-up
        request_verification_enabled=True,
    )
    services = Services(
        engine=engine,
        rules=rules or CoachingRules(),
        practice=practice,
        pipeline=pipeline,
        web_base_url=settings.web_base_url,
        titles=dict(titles or {}),
        clock=clock,
        chart=chart,
    )
    register(app, services)
    logger.info(
        "slack app built",
        extra={
            "practice": practice is not None,
            "approvals": pipeline is not None,
            "rubrics": len(rubrics.rubrics) if rubrics is not None else 0,
        },
    )
    return app


@asynccontextmanager
async def open_practice(
    settings: Settings,
    *,
    engine: Engine,
    rubrics: RubricLibrary,
    library: ScenarioLibrary,
    judge: Judge,
) -> AsyncIterator[PracticeDriver]:
    """A practice driver for the lifetime of the block (its checkpointer open)."""
    from evaluators.embeddings import SentenceEncoder
    from scenarios import PracticeRecorder, TurnObserver, make_engine, open_checkpointer

    persona = make_engine(settings.practice.persona_engine, settings.llm)
    observer = TurnObserver(await asyncio.to_thread(SentenceEncoder))
    target = settings.practice.checkpoint_url or settings.data_dir / "practice.sqlite"
    async with open_checkpointer(target) as saver:
        yield PracticeDriver(
            library=library,
            rubrics=rubrics,
            engine=persona,
            observer=observer,
            recorder=PracticeRecorder(judge, rubrics, engine),
            checkpointer=saver,
        )


def check_settings(slack: SlackSettings) -> None:
    """The settings needed to serve Slack at all.

    Raises:
        BotConfigError: A token or the signing secret is missing; the message names it.
    """
    if slack.bot_token is None:
        raise BotConfigError(
            "Serving Slack needs a bot token; set COACHLOOP_SLACK__BOT_TOKEN (the `xoxb-` "
            "token on the app's OAuth & Permissions page). Without one, messages stay in the "
            "outbox: `coachloop outbox` and the web app's Messages page"
        )
    if slack.app_token is None and slack.signing_secret is None:
        raise BotConfigError(
            "HTTP mode needs the signing secret to verify Slack's requests; set "
            "COACHLOOP_SLACK__SIGNING_SECRET (Basic Information > App Credentials), or "
            "COACHLOOP_SLACK__APP_TOKEN for Socket Mode"
        )


def _error_of(exc: SlackApiError) -> str:
    response = exc.response
    return str(response.get("error") or "") if response is not None else ""


async def check_credentials(client: AsyncWebClient, slack: SlackSettings) -> None:
    """Ask Slack whether the tokens work, before anything is served.

    The app token is tried by asking for a Socket Mode URL, which is left unused: the
    connection asks for its own when it opens (a URL is only valid for a short while).

    Raises:
        BotConfigError: Slack refused a token or cannot be reached; the message names the
            setting to fix.
    """
    where = slack.api_base_url or "https://slack.com/api/"
    try:
        await client.auth_test()
    except SlackApiError as exc:
        raise BotConfigError(
            f"Slack refused the bot token ({_error_of(exc)}); check "
            "COACHLOOP_SLACK__BOT_TOKEN (it starts with `xoxb-`, on the app's OAuth & "
            "Permissions page, after the app is installed)"
        ) from None
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise BotConfigError(
            f"Slack's Web API at {where} cannot be reached ({type(exc).__name__}); check the "
            "network, or COACHLOOP_SLACK__API_BASE_URL if it is set"
        ) from None
    if slack.app_token is None:
        return
    try:
        await client.apps_connections_open(app_token=slack.app_token.get_secret_value())
    except SlackApiError as exc:
        raise BotConfigError(
            f"Slack refused the app token for Socket Mode ({_error_of(exc)}); check "
            "COACHLOOP_SLACK__APP_TOKEN (an app-level `xapp-` token with the "
            "`connections:write` scope), or unset it to serve Slack over HTTP"
        ) from None


@dataclass
class RunningBot:
    """The Slack app while it runs: the Bolt app, how Slack reaches it, and the delivery."""

    app: AsyncApp
    socket_mode: bool
    worker: DeliveryWorker | None
    undelivered: UndeliveredReport
    """Messages Slack could not take before this start (reported at start-up)."""
    http_port: int | None = None
    """HTTP mode under `serve`: the port Slack's requests arrive at."""


@asynccontextmanager
async def running(
    *,
    engine: Engine,
    settings: Settings,
    rubrics: RubricLibrary,
    rules: CoachingRules,
    catalogue: ScenarioCatalogue,
    library: ScenarioLibrary | None = None,
    judge: Judge | None = None,
    deliver: bool = True,
    web_base_url: str | None = None,
) -> AsyncIterator[RunningBot]:
    """The Slack app with its delivery worker, for the lifetime of the block.

    In Socket Mode (an app token is set) the WebSocket to Slack is open inside the block; in
    HTTP mode the caller serves `bot.http.create_asgi_app(running.app)` or mounts it.

    Args:
        engine: The database.
        settings: Process settings; `settings.slack` must hold a bot token, and the signing
            secret or an app token.
        rubrics: The organisation's rubrics.
        rules: Coaching rules.
        catalogue: Scenarios a cohort decision may assign.
        library: Scenarios for text practice in DM threads; with `judge`, turns it on.
        judge: Scores practice sessions.
        deliver: Run the outbox delivery worker.
        web_base_url: The web app's address for links, when `settings.slack.web_base_url`
            is unset (the web app runs in this process).

    Raises:
        BotConfigError: A setting is missing or Slack refused a token.
    """
    slack = settings.slack
    check_settings(slack)
    if web_base_url and not slack.web_base_url:
        slack = slack.model_copy(update={"web_base_url": web_base_url})
    await check_credentials(web_client(slack, retries=False), slack)
    socket_mode = slack.app_token is not None
    report = await asyncio.to_thread(undelivered_report, engine)
    if report.items:
        logger.warning("messages undeliverable", extra={"by_reason": report.by_reason()})
    stop = asyncio.Event()
    async with AsyncExitStack() as stack:
        practice: PracticeDriver | None = None
        if library is not None and judge is not None:
            practice = await stack.enter_async_context(
                open_practice(
                    settings, engine=engine, rubrics=rubrics, library=library, judge=judge
                )
            )
        pipeline = stack.enter_context(
            open_pipeline(engine, settings.data_dir, rules=rules, catalogue=catalogue)
        )
        app = build_app(
            engine=engine,
            settings=slack,
            rubrics=rubrics,
            rules=rules,
            practice=practice,
            pipeline=pipeline,
        )
        worker: DeliveryWorker | None = None
        task: asyncio.Task[None] | None = None
        if deliver:
            worker = DeliveryWorker(
                engine,
                web_client(slack, retries=False),
                DeliveryOptions.from_settings(slack, digest_hour_utc=rules.alerts.digest_hour_utc),
            )
            task = asyncio.create_task(worker.run(stop))
        handler: Any = None
        try:
            if slack.app_token is not None:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                handler = AsyncSocketModeHandler(app, slack.app_token.get_secret_value())
                await handler.connect_async()
                logger.info("slack connected in socket mode")
            yield RunningBot(app=app, socket_mode=socket_mode, worker=worker, undelivered=report)
        finally:
            stop.set()
            if handler is not None:
                await handler.close_async()
            if task is not None:
                with suppress(asyncio.CancelledError):
                    await task


async def serve(
    *,
    engine: Engine,
    settings: Settings,
    rubrics: RubricLibrary,
    rules: CoachingRules,
    catalogue: ScenarioCatalogue,
    library: ScenarioLibrary | None = None,
    judge: Judge | None = None,
    port: int | None = None,
    deliver: bool = True,
    stop: asyncio.Event | None = None,
    started: Callable[[RunningBot], None] | None = None,
) -> None:
    """Run the Slack app and the delivery worker until `stop` is set or SIGINT / SIGTERM.

    Socket Mode when `settings.slack.app_token` is set, else HTTP mode on
    `settings.slack.host`:`port` (default `settings.slack.port`) at `/slack/events`. Text
    practice runs when a scenario library and a judge are given; `started` is called once
    Slack can reach the app.

    Raises:
        BotConfigError: A setting is missing or Slack refused a token.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with running(
            engine=engine,
            settings=settings,
            rubrics=rubrics,
            rules=rules,
            catalogue=catalogue,
            library=library,
            judge=judge,
            deliver=deliver,
        ) as bot:
            if bot.socket_mode:
                if started is not None:
                    started(bot)
                await stop.wait()
            else:
                slack = settings.slack
                listen = slack.port if port is None else port
                await _serve_http(bot, slack.host, listen, stop, started)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BotConfigError(
            f"Cannot listen for Slack on {host}:{port} ({exc.strerror or exc}); set "
            "COACHLOOP_SLACK__HOST / COACHLOOP_SLACK__PORT, or --port"
        ) from None
    sock.set_inheritable(True)
    return sock


async def _serve_http(
    bot: RunningBot,
    host: str,
    port: int,
    stop: asyncio.Event,
    started: Callable[[RunningBot], None] | None,
) -> None:
    import uvicorn

    from bot.http import create_asgi_app

    ready = asyncio.Event()

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            ready.set()

    sock = _listen(host, port)
    config = uvicorn.Config(
        create_asgi_app(bot.app),
        log_level="warning",
        access_log=False,
        lifespan="off",
        log_config=None,
    )
    server = Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stopping = asyncio.create_task(stop.wait())
    readying = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({serving, readying}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            bot.http_port = int(sock.getsockname()[1])
            logger.info("slack listening over http", extra={"host": host, "port": bot.http_port})
            if started is not None:
                started(bot)
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
        readying.cancel()
        await serving
        sock.close()


def attach(
    asgi_app: Any,
    *,
    engine: Engine,
    settings: Settings,
    rubrics: RubricLibrary,
    rules: CoachingRules,
    catalogue: ScenarioCatalogue,
    library: ScenarioLibrary | None = None,
    judge: Judge | None = None,
    web_base_url: str | None = None,
) -> None:
    """Run the Slack app inside a Starlette / FastAPI app's lifespan (the web app).

    The bot starts when the server starts and stops with it; in HTTP mode Slack's requests
    are answered at `/slack/events` of the same server. Missing settings are an error here;
    when Slack refuses a token at start-up, the reason is logged and the web app serves on
    without Slack.

    Raises:
        BotConfigError: A token or the signing secret is missing.
    """
    check_settings(settings.slack)
    inner = asgi_app.router.lifespan_context
    routed: list[Any] = []

    async def slack_events(request: Any) -> Any:
        from starlette.responses import PlainTextResponse

        if not routed:
            return PlainTextResponse("the Slack app is not running", status_code=503)
        return await routed[0].handle(request)

    if settings.slack.app_token is None:
        from bot.http import EVENTS_PATH

        asgi_app.router.add_route(EVENTS_PATH, slack_events, methods=["POST"])

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state, AsyncExitStack() as stack:
            try:
                bot = await stack.enter_async_context(
                    running(
                        engine=engine,
                        settings=settings,
                        rubrics=rubrics,
                        rules=rules,
                        catalogue=catalogue,
                        library=library,
                        judge=judge,
                        web_base_url=web_base_url,
                    )
                )
            except BotConfigError as exc:
                # the web app still serves; Slack stays off until the setting is fixed
                logger.error("slack app not started", extra={"reason": str(exc)})
                yield state
                return
            from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler

            routed.append(AsyncSlackRequestHandler(bot.app))
            try:
                yield state
            finally:
                routed.clear()

    asgi_app.router.lifespan_context = lifespan


def manifest_text() -> str:
    """The Slack app manifest shipped with coachloop."""
    return MANIFEST.read_text(encoding="utf-8")
