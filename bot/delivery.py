"""Delivery from the outbox to Slack DMs: paced, retried, and never sent twice.

The worker claims due messages (`coaching.outbox.claim` marks them `sending` and commits
before anything is posted), opens the recipient's DM, posts the rendered blocks with message
`metadata` naming the outbox id, and marks the message `sent` with the channel and `ts`.

- **No duplicates.** A message that was tried before (a crash after `sending`, or a timeout
  that left the outcome unknown) is only posted after the DM's history, since its first
  attempt, shows no message carrying its outbox id; if one is there, it is marked sent.
  A worker that stops leaves its `sending` messages to be taken over when their lease ends.
- **Rate limits.** Calls of each Web API method are spaced evenly under the per-minute
  budget, messages to one person at least `channel_interval_s` apart; a 429 pauses that
  method for its `Retry-After`, spaces its calls a quarter further apart from then on (the
  budget was more than the workspace allows), and puts the message back in the queue.
- **Failures.** Passing ones (5xx, connection errors, `ratelimited`, `service_unavailable`)
  are retried with exponential backoff up to `max_attempts`; permanent ones (no such user,
  DMs to the app blocked, no Slack id) are recorded with their reason and reported by
  `undelivered_report`, at the start of `coachloop slack`, in `coachloop outbox` and on the
  web app's Messages page.
- **People known by e-mail only.** A recipient without a Slack id is looked up by e-mail
  (`users.lookupByEmail`) and the id is stored; no match is a permanent `users_not_found`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import blocks
from coaching.access import link_slack_user, slack_user_ids
from coaching.feedback import render_text
from coaching.outbox import build_digests, claim, mark_failed, mark_sent, reschedule, undelivered
from config.settings import SlackSettings
from store.models import OutboxMessage, Person, utcnow

logger = logging.getLogger(__name__)

EVENT_TYPE = "coachloop_outbox"
"""The message `metadata` event type that carries the outbox id of a delivered message."""

PERMANENT_ERRORS = frozenset(
    {
        "user_not_found",
        "users_not_found",
        "cannot_dm_bot",
        "channel_not_found",
        "account_inactive",
        "user_disabled",
        "is_archived",
        "not_in_channel",
        "messages_tab_disabled",
        "restricted_action",
        "user_is_bot",
        "missing_slack_id",
    }
)
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "service_unavailable",
        "internal_error",
        "fatal_error",
        "request_timeout",
        "connection_error",
        "team_added_to_org",
    }
)
AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "token_revoked", "token_expired"})
HISTORY_MARGIN = timedelta(minutes=2)
"""Look this far before the first attempt, for clocks that disagree with Slack's."""


@dataclass(frozen=True)
class DeliveryOptions:
    messages_per_minute: int = 60
    """Calls per minute of each Web API method."""
    channel_interval_s: float = 1.0
    """Least time between two messages to one person."""
    max_attempts: int = 8
    lease_s: float = 120.0
    """How long a claimed message is this worker's before another may take it over."""
    batch_size: int = 10
    backoff_base_s: float = 5.0
    backoff_max_s: float = 900.0
    poll_interval_s: float = 5.0
    digest_hour_utc: int | None = 8
    """Build the day's digests at this hour (UTC); None leaves digests to `coachloop coach`."""
    history_pages: int = 5
    auth_pause_s: float = 300.0

    @classmethod
    def from_settings(
        cls, slack: SlackSettings, *, digest_hour_utc: int | None = 8
    ) -> DeliveryOptions:
        return cls(
            messages_per_minute=slack.messages_per_minute,
            channel_interval_s=slack.channel_interval_s,
            max_attempts=slack.max_attempts,
            poll_interval_s=slack.poll_interval_s,
            digest_hour_utc=digest_hour_utc,
        )


@dataclass
class DeliveryStats:
    sent: int = 0
    found_sent: int = 0
    """Tried before and found in the DM's history: marked sent without posting again."""
    retrying: int = 0
    failed: int = 0
    rate_limited: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.found_sent + self.retrying + self.failed


class Pacer:
    """Spaces the calls of each method evenly under a per-minute budget, keeps messages to one
    conversation apart, and pauses a method when Slack asks for it."""

    def __init__(
        self,
        per_minute: int,
        channel_interval_s: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = 60.0 / per_minute
        self.channel_interval = channel_interval_s
        self._monotonic = monotonic
        self._sleep = sleep
        self._intervals: dict[str, float] = {}
        self._next: dict[str, float] = defaultdict(float)
        self._paused: dict[str, float] = defaultdict(float)
        self._channel_ready: dict[str, float] = defaultdict(float)

    def channel_ready_at(self, key: str | None) -> float:
        return self._channel_ready[key] if key else 0.0

    def interval_of(self, method: str) -> float:
        """Seconds between two calls of `method` now."""
        return self._intervals.get(method, self.interval)

    def pause(self, method: str, seconds: float) -> None:
        until = self._monotonic() + seconds
        self._paused[method] = max(self._paused[method], until)

    def slow_down(self, method: str, factor: float = 1.25, longest_s: float = 60.0) -> None:
        """Space `method`'s calls further apart from now on: Slack said the budget is more
        than this workspace allows."""
        self._intervals[method] = min(longest_s, self.interval_of(method) * factor)

    def pause_all(self, seconds: float) -> None:
        self.pause("*", seconds)

    async def wait(self, method: str, channel_key: str | None = None) -> None:
        """Wait for this method's next slot (and the conversation's), then take it."""
        while True:
            now = self._monotonic()
            ready = max(
                self._next[method],
                self._paused[method],
                self._paused["*"],
                self.channel_ready_at(channel_key),
            )
            if ready <= now:
                break
            await self._sleep(ready - now)
        self._next[method] = now + self.interval_of(method)
        if channel_key:
            self._channel_ready[channel_key] = now + self.channel_interval


class _CallFailed(Exception):
    def __init__(self, method: str, error: str, status: int, retry_after: float | None) -> None:
        super().__init__(f"{method}: {error}")
        self.method = method
        self.error = error
        self.status = status
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    for key, value in (headers or {}).items():
        if str(key).lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


class DeliveryWorker:
    """Delivers outbox messages as Slack DMs.

    Args:
        engine: The database holding the outbox.
        client: A Web API client; give it no retry handlers (the worker retries itself, and
            must look before posting again).
        options: Pacing, retries and leases.
        clock: The time now (timezone-aware); used for the outbox's times.
        pacer: Overrides the pacing built from `options` (tests use their own sleep).
    """

    def __init__(
        self,
        engine: Engine,
        client: AsyncWebClient,
        options: DeliveryOptions | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        pacer: Pacer | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.options = options or DeliveryOptions()
        self.clock = clock
        self.pacer = pacer or Pacer(
            self.options.messages_per_minute, self.options.channel_interval_s
        )
        self._channels: dict[str, str] = {}
        self._looked_up: dict[int, str | None] = {}

    # -- running --------------------------------------------------------------------------

    async def run_once(
        self, *, progress: Callable[[DeliveryStats], None] | None = None
    ) -> DeliveryStats:
        """Deliver every message that is due now, batch by batch; returns what happened."""
        stats = DeliveryStats()
        while True:
            batch = await asyncio.to_thread(
                claim,
                self.engine,
                self.clock(),
                limit=self.options.batch_size,
                lease_s=self.options.lease_s,
            )
            if not batch:
                return stats
            await self._deliver_batch(batch, stats, progress)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set, looking for new messages every `poll_interval_s`."""
        logger.info("delivery started", extra={"per_minute": self.options.messages_per_minute})
        while not stop.is_set():
            try:
                if self.options.digest_hour_utc is not None:
                    await asyncio.to_thread(
                        build_digests,
                        self.engine,
                        self.clock(),
                        hour_utc=self.options.digest_hour_utc,
                    )
                stats = await self.run_once()
                if stats.handled:
                    logger.info(
                        "delivery round",
                        extra={
                            "sent": stats.sent,
                            "found_sent": stats.found_sent,
                            "retrying": stats.retrying,
                            "failed": stats.failed,
                        },
                    )
            except Exception:
                logger.exception("delivery round failed")
            try:
                await asyncio.wait_for(stop.wait(), self.options.poll_interval_s)
            except TimeoutError:
                pass
        logger.info("delivery stopped")

    # -- one batch ------------------------------------------------------------------------

    async def _deliver_batch(
        self,
        batch: list[OutboxMessage],
        stats: DeliveryStats,
        progress: Callable[[DeliveryStats], None] | None,
    ) -> None:
        ids = await asyncio.to_thread(slack_user_ids, self.engine, [m.recipient_id for m in batch])
        pending = list(enumerate(batch))
        while pending:
            # the message whose conversation is free soonest (claim order breaks ties)
            index, message = min(
                pending,
                key=lambda item: (
                    self.pacer.channel_ready_at(ids.get(item[1].recipient_id)),
                    item[0],
                ),
            )
            pending.remove((index, message))
            await self._deliver(message, ids.get(message.recipient_id), stats)
            if progress is not None:
                progress(stats)

    async def _deliver(
        self, message: OutboxMessage, slack_user: str | None, stats: DeliveryStats
    ) -> None:
        assert message.id is not None
        try:
            slack_user = slack_user or await self._look_up(message.recipient_id)
            if not slack_user:
                await self._give_up(message, "missing_slack_id", stats)
                return
            channel = await self._open(slack_user)
            if message.attempts > 1:
                ref = await self._find_delivered(channel, message)
                if ref is not None:
                    await asyncio.to_thread(
                        mark_sent, self.engine, message.id, self.clock(), ref=ref
                    )
                    stats.found_sent += 1
                    logger.info("delivery found already made", extra={"message_id": message.id})
                    return
            try:
                rendered = blocks.outbox_message(message.kind, message.payload)
            except Exception:
                logger.exception("message cannot be rendered", extra={"message_id": message.id})
                await self._give_up(message, "unrenderable", stats)
                return
            ts = await self._post(channel, slack_user, message, rendered)
        except _CallFailed as exc:
            await self._failed(message, exc, stats)
            return
        await asyncio.to_thread(
            mark_sent, self.engine, message.id, self.clock(), ref=f"{channel}:{ts}"
        )
        stats.sent += 1

    # -- Web API calls --------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        call: Callable[..., Awaitable[Any]],
        channel_key: str | None = None,
        **kwargs: Any,
    ) -> Any:
        await self.pacer.wait(method, channel_key)
        try:
            return await call(**kwargs)
        except SlackApiError as exc:
            response = exc.response
            error = str(response.get("error") or "") if response is not None else ""
            status = int(getattr(response, "status_code", 0) or 0)
            headers = getattr(response, "headers", None)
            if status == 429 and not error:
                error = "ratelimited"
            raise _CallFailed(
                method, error or f"http_{status}", status, _retry_after(headers)
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning(
                "slack unreachable", extra={"method": method, "error": type(exc).__name__}
            )
            raise _CallFailed(method, "connection_error", 0, None) from None

    async def _look_up(self, person_id: int) -> str | None:
        """The Slack id of a person known only by e-mail (`users.lookupByEmail`), stored on
        the person once found; None when the person has no e-mail either.

        Raises:
            _CallFailed: Slack has no user with that e-mail (`users_not_found`), or the
                call failed.
        """
        if person_id in self._looked_up:
            return self._looked_up[person_id]
        email = await asyncio.to_thread(_email_of, self.engine, person_id)
        if not email:
            return None
        found = await self._call(
            "users.lookupByEmail", self.client.users_lookupByEmail, email=email
        )
        slack_user = str((found.get("user") or {}).get("id") or "") or None
        if slack_user:
            await asyncio.to_thread(link_slack_user, self.engine, slack_user, email)
            logger.info(
                "slack user found by e-mail",
                extra={"person_id": person_id, "slack_user": slack_user},
            )
        self._looked_up[person_id] = slack_user
        return slack_user

    async def _open(self, slack_user: str) -> str:
        channel = self._channels.get(slack_user)
        if channel is None:
            opened = await self._call(
                "conversations.open", self.client.conversations_open, users=slack_user
            )
            channel = str(opened["channel"]["id"])
            self._channels[slack_user] = channel
        return channel

    async def _post(
        self, channel: str, slack_user: str, message: OutboxMessage, rendered: list[dict[str, Any]]
    ) -> str:
        response = await self._call(
            "chat.postMessage",
            self.client.chat_postMessage,
            channel_key=slack_user,
            channel=channel,
            text=blocks.clip(render_text(message.kind, message.payload), 3000) or "coachloop",
            blocks=rendered,
            metadata={
                "event_type": EVENT_TYPE,
                "event_payload": {"outbox_id": message.id, "kind": message.kind},
            },
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    async def _find_delivered(self, channel: str, message: OutboxMessage) -> str | None:
        """Where the message already is in the DM, if an earlier attempt posted it."""
        since = (message.first_attempt_at or message.created_at) - HISTORY_MARGIN
        cursor: str | None = None
        for _ in range(self.options.history_pages):
            page = await self._call(
                "conversations.history",
                self.client.conversations_history,
                channel=channel,
                oldest=f"{since.timestamp():.6f}",
                include_all_metadata=True,
                limit=200,
                **({"cursor": cursor} if cursor else {}),
            )
            for found in page.get("messages") or []:
                metadata = found.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == EVENT_TYPE and str(
                    payload.get("outbox_id")
                ) == str(message.id):
                    return f"{channel}:{found['ts']}"
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    # -- outcomes -------------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        delay = self.options.backoff_base_s * 2.0 ** max(0, attempts - 1)
        return float(min(self.options.backoff_max_s, delay)) * random.uniform(0.8, 1.2)

    async def _give_up(self, message: OutboxMessage, reason: str, stats: DeliveryStats) -> None:
        assert message.id is not None
        await asyncio.to_thread(mark_failed, self.engine, message.id, reason)
        stats.failed += 1
        logger.warning(
            "message undeliverable",
            extra={
                "message_id": message.id,
                "kind": message.kind,
                "recipient_id": message.recipient_id,
                "reason": reason,
            },
        )

    async def _failed(self, message: OutboxMessage, exc: _CallFailed, stats: DeliveryStats) -> None:
        assert message.id is not None
        now = self.clock()
        if exc.status == 429 or exc.error in ("ratelimited", "rate_limited"):
            wait = exc.retry_after if exc.retry_after is not None else 1.0
            self.pacer.pause(exc.method, wait)
            self.pacer.slow_down(exc.method)
            await asyncio.to_thread(
                reschedule, self.engine, message.id, "ratelimited", now + timedelta(seconds=wait)
            )
            stats.rate_limited += 1
            stats.retrying += 1
            logger.warning("slack rate limit", extra={"method": exc.method, "retry_after_s": wait})
            return
        if exc.error in PERMANENT_ERRORS:
            await self._give_up(message, exc.error, stats)
            return
        if exc.error in AUTH_ERRORS:
            self.pacer.pause_all(self.options.auth_pause_s)
            retry_at = now + timedelta(seconds=self.options.auth_pause_s)
            await asyncio.to_thread(reschedule, self.engine, message.id, exc.error, retry_at)
            stats.retrying += 1
            logger.error(
                "slack rejected the bot token; check COACHLOOP_SLACK__BOT_TOKEN",
                extra={"error": exc.error},
            )
            return
        if exc.status >= 500 or exc.error in TRANSIENT_ERRORS:
            if message.attempts >= self.options.max_attempts:
                await self._give_up(
                    message, f"{exc.error} (gave up after {message.attempts} tries)", stats
                )
                return
            retry_at = now + timedelta(seconds=self._backoff(message.attempts))
            await asyncio.to_thread(reschedule, self.engine, message.id, exc.error, retry_at)
            stats.retrying += 1
            logger.info(
                "delivery will be retried",
                extra={"message_id": message.id, "error": exc.error, "attempts": message.attempts},
            )
            return
        await self._give_up(message, exc.error, stats)


def _email_of(engine: Engine, person_id: int) -> str | None:
    with Session(engine) as session:
        person = session.get(Person, person_id)
    return person.email if person is not None and person.email else None


@dataclass(frozen=True)
class Undelivered:
    message_id: int
    kind: str
    recipient_id: int
    reason: str
    attempts: int
    created_at: datetime


@dataclass
class UndeliveredReport:
    items: list[Undelivered] = field(default_factory=list)

    def by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for item in self.items:
            counts[item.reason.split(" ", 1)[0]] += 1
        return dict(sorted(counts.items()))


def undelivered_report(engine: Engine, *, limit: int = 500) -> UndeliveredReport:
    """Messages Slack could not take, with the reason (missing Slack id, DMs blocked, ...)."""
    return UndeliveredReport(
        [
            Undelivered(
                message_id=m.id or 0,
                kind=m.kind,
                recipient_id=m.recipient_id,
                reason=m.last_error or "unknown",
                attempts=m.attempts,
                created_at=m.created_at,
            )
            for m in undelivered(engine, limit=limit)
        ]
    )
