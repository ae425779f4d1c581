"""The Slack app: the Bolt app, and the process that serves it with the delivery worker.

```python
app = build_app(engine=engine, settings=settings.slack, rubrics=rubrics, services=...)
await serve(engine=engine, settings=settings, rubrics=rubrics, ...)   # Socket Mode or HTTP
```

Socket Mode when an app token is set (no public URL needed); otherwise HTTP mode, with
Slack's requests verified by the signing secret at `/slack/events` under uvicorn.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from datetime import datetime
from pathlib import Path

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine

from bot.delivery import DeliveryOptions, DeliveryWorker
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
    if slack.api_base_url:
        return AsyncWebClient(token=token, base_url=slack.api_base_url, retry_handlers=handlers)
    return AsyncWebClient(token=token, retry_handlers=handlers)


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
) -> None:
    """Run the Slack app and the delivery worker until stopped (SIGINT or SIGTERM).

    Socket Mode when `settings.slack.app_token` is set, else HTTP mode on
    `settings.slack.host`:`port`. Text practice runs when a scenario library and a judge
    are given.
    """
    slack = settings.slack
    if slack.bot_token is None:
        raise BotConfigError(
            "Serving Slack needs a bot token; set COACHLOOP_SLACK__BOT_TOKEN (without one, "
            "messages stay in the outbox: `coachloop outbox`)"
        )
    socket_mode = slack.app_token is not None
    if not socket_mode and slack.signing_secret is None:
        raise BotConfigError(
            "HTTP mode needs the signing secret to verify Slack's requests; set "
            "COACHLOOP_SLACK__SIGNING_SECRET, or COACHLOOP_SLACK__APP_TOKEN for Socket Mode"
        )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
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
        tasks: list[asyncio.Task[None]] = []
        if deliver:
            worker = DeliveryWorker(
                engine,
                web_client(slack, retries=False),
                DeliveryOptions.from_settings(slack, digest_hour_utc=rules.alerts.digest_hour_utc),
            )
            tasks.append(asyncio.create_task(worker.run(stop)))
        try:
            if socket_mode:
                await _serve_socket_mode(app, slack, stop, loop)
            else:
                await _serve_http(app, slack.host, port or slack.port)
        finally:
            stop.set()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task


async def _serve_socket_mode(
    app: AsyncApp, slack: SlackSettings, stop: asyncio.Event, loop: asyncio.AbstractEventLoop
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    assert slack.app_token is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    handler = AsyncSocketModeHandler(app, slack.app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]
    logger.info("slack connected in socket mode")
    try:
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]


async def _serve_http(app: AsyncApp, host: str, port: int) -> None:
    import uvicorn

    from bot.http import create_asgi_app

    config = uvicorn.Config(
        create_asgi_app(app), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    logger.info("slack listening over http", extra={"host": host, "port": port})
    await server.serve()


def manifest_text() -> str:
    """The Slack app manifest shipped with coachloop."""
    return MANIFEST.read_text(encoding="utf-8")
