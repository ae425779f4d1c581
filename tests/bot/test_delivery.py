"""Delivery from the outbox to Slack DMs, on SQLite and PostgreSQL: rendering and metadata,
digests, permanent and passing failures, rate limits and pacing, and no duplicate DM across
a crash at either side of the post."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

import bot.delivery as delivery
from bot.delivery import DeliveryOptions, DeliveryWorker, undelivered_report
from coaching.feedback import rep_feedback
from coaching.outbox import enqueue
from coaching.scored import CriterionScore, ScoredInteraction
from store.db import session_scope
from store.models import OutboxMessage, Person, utcnow
from tests.coaching.conftest import SUPPORT, evidence
from tests.fakes.slack_api import FakeSlackApi, RateLimit

FAST = DeliveryOptions(
    messages_per_minute=60_000, channel_interval_s=0, backoff_base_s=0.05, lease_s=0
)


class Crash(BaseException):
    """The process dies here: nothing after it runs, nothing catches it."""


@pytest.fixture
def slack() -> Any:
    with FakeSlackApi() as fake:
        yield fake


def client(slack: FakeSlackApi) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=slack.base_url, retry_handlers=[])


def person(engine: Engine, name: str, slack_user_id: str | None) -> Person:
    with session_scope(engine) as session:
        p = Person(external_id=name.lower(), name=name, slack_user_id=slack_user_id)
        session.add(p)
        return p


def feedback_payload(level: int) -> dict[str, Any]:
    scored = ScoredInteraction(
        interaction_id=7,
        evaluation_id=1,
        rubric_version=SUPPORT.version,
        rep_id=1,
        team_id=None,
        role="support",
        kind="call",
        started_at=datetime(2026, 11, 2, 9, tzinfo=UTC),
        scores=[
            CriterionScore(i + 1, c.id, level, evidence(c.id, level))
            for i, c in enumerate(SUPPORT.criteria)
        ],
    )
    return rep_feedback(scored, SUPPORT, flag_below=2.0)


def queue(
    engine: Engine,
    to: Person,
    key: str,
    *,
    kind: str = "rep_feedback",
    status: str = "queued",
    at: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    with session_scope(engine) as session:
        message_id, _ = enqueue(
            session,
            kind=kind,
            recipient_id=to.id,
            payload=payload or feedback_payload(1),
            dedupe_key=key,
            now=at or utcnow(),
            status=status,
        )
    return message_id


def outbox(engine: Engine) -> dict[int, OutboxMessage]:
    with Session(engine) as session:
        return {m.id or 0: m for m in session.exec(select(OutboxMessage)).all()}


def delivered_ids(slack: FakeSlackApi) -> list[int]:
    return [
        int(m["metadata"]["event_payload"]["outbox_id"])
        for m in slack.all_messages
        if (m.get("metadata") or {}).get("event_type") == delivery.EVENT_TYPE
    ]


async def test_each_message_is_posted_once_with_its_outbox_id(
    db_engine: Engine, slack: FakeSlackApi
) -> None:
    ada, ben = person(db_engine, "Ada", "UADA"), person(db_engine, "Ben", "UBEN")
    first = queue(db_engine, ada, "a")
    second = queue(db_engine, ben, "b", payload=feedback_payload(3))
    worker = DeliveryWorker(db_engine, client(slack), FAST)

    stats = await worker.run_once()
    again = await worker.run_once()

    assert (stats.sent, again.handled) == (2, 0)
    assert sorted(delivered_ids(slack)) == [first, second]
    [posted] = slack.messages("DUADA")
    assert posted["metadata"]["event_payload"] == {"outbox_id": first, "kind": "rep_feedback"}
    assert posted["blocks"][0]["type"] == "header"
    assert "Practise now" not in str(posted["blocks"]) and "Dispute" in str(posted["blocks"])
    stored = outbox(db_engine)
    assert {m.status for m in stored.values()} == {"sent"}
    assert stored[first].delivery_ref == f"DUADA:{posted['ts']}"
    assert stored[first].attempts == 1


async def test_held_alerts_wait_for_the_daily_digest(
    db_engine: Engine, slack: FakeSlackApi
) -> None:
    boss = person(db_engine, "Boss", "UBOSS")
    alert = {
        "type": "individual",
        "title": "Individual coaching",
        "rep": {"name": "Ada"},
        "criterion": {"id": "acknowledge_concern", "name": "Acknowledge"},
        "summary": "mean 1.20 over 5 sessions",
        "why": {},
    }
    yesterday = utcnow() - timedelta(days=1, hours=1)
    held = queue(
        db_engine, boss, "h", kind="manager_alert", status="held", at=yesterday, payload=alert
    )
    options = DeliveryOptions(
        messages_per_minute=60_000, channel_interval_s=0, poll_interval_s=0.05, digest_hour_utc=0
    )
    worker = DeliveryWorker(db_engine, client(slack), options)

    assert (await worker.run_once()).handled == 0
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    for _ in range(400):
        if slack.messages("DUBOSS"):
            break
        await asyncio.sleep(0.025)
    stop.set()
    await task

    [digest] = slack.messages("DUBOSS")
    assert "Daily digest: 1 alert" in str(digest["blocks"])
    stored = outbox(db_engine)
    assert stored[held].status == "digested"
    assert [m.kind for m in stored.values() if m.status == "sent"] == ["digest"]


async def test_permanent_failures_are_recorded_and_the_rest_go_through(
    db_engine: Engine, slack: FakeSlackApi
) -> None:
    ok = person(db_engine, "Ok", "UOK")
    blocked = person(db_engine, "Blocked", "UBLOCKED")
    gone = person(db_engine, "Gone", "UGONE")
    unlinked = person(db_engine, "Unlinked", None)
    slack.fail_for_user("UBLOCKED", "cannot_dm_bot")
    slack.fail_for_user("UGONE", "user_not_found")
    ids = {p.name: queue(db_engine, p, p.name) for p in (ok, blocked, gone, unlinked)}

    stats = await DeliveryWorker(db_engine, client(slack), FAST).run_once()

    assert (stats.sent, stats.failed) == (1, 3)
    assert delivered_ids(slack) == [ids["Ok"]]
    stored = outbox(db_engine)
    assert stored[ids["Blocked"]].status == "failed"
    assert stored[ids["Blocked"]].last_error == "cannot_dm_bot"
    report = undelivered_report(db_engine)
    assert report.by_reason() == {"cannot_dm_bot": 1, "missing_slack_id": 1, "user_not_found": 1}
    assert (await DeliveryWorker(db_engine, client(slack), FAST).run_once()).handled == 0


async def test_people_known_by_email_only_are_found_in_slack_once(db_engine: Engine) -> None:
    with session_scope(db_engine) as session:
        fay = Person(external_id="fay", name="Fay", email="Fay@Harbor.example")
        stranger = Person(external_id="sam", name="Sam", email="sam@elsewhere.example")
        session.add_all([fay, stranger])
    users = {"UFAY": {"name": "fay", "profile": {"email": "fay@harbor.example"}}}
    with FakeSlackApi(users=users) as slack:
        ids = [queue(db_engine, fay, "fay-1"), queue(db_engine, fay, "fay-2")]
        lost = queue(db_engine, stranger, "sam-1")

        stats = await DeliveryWorker(db_engine, client(slack), FAST).run_once()

        assert (stats.sent, stats.failed) == (2, 1)
        assert sorted(delivered_ids(slack)) == sorted(ids)
        assert [m["channel"] for m in slack.all_messages] == ["DUFAY", "DUFAY"]
        lookups = slack.calls_to("users.lookupByEmail")
        assert [c.body["email"] for c in lookups] == ["Fay@Harbor.example", "sam@elsewhere.example"]
    with Session(db_engine) as session:
        stored = session.get(Person, fay.id)
        assert stored is not None and stored.slack_user_id == "UFAY"
    assert outbox(db_engine)[lost].last_error == "users_not_found"


async def run_until_delivered(worker: DeliveryWorker, engine: Engine, rounds: int = 200) -> Any:
    total = delivery.DeliveryStats()
    for _ in range(rounds):
        stats = await worker.run_once()
        for name in ("sent", "found_sent", "retrying", "failed", "rate_limited"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        if all(m.status in ("sent", "failed") for m in outbox(engine).values()):
            return total
        await asyncio.sleep(0.02)
    raise AssertionError("messages still waiting")


async def test_a_429_pauses_and_the_message_goes_later_once(
    db_engine: Engine, slack: FakeSlackApi
) -> None:
    ada = person(db_engine, "Ada", "UADA")
    message = queue(db_engine, ada, "a")
    slack.rate_limit_next("chat.postMessage", retry_after_s=1)
    worker = DeliveryWorker(db_engine, client(slack), FAST)

    first = await worker.run_once()
    waiting = outbox(db_engine)[message]
    total = await run_until_delivered(worker, db_engine)

    assert first.rate_limited == 1
    # the budget was too much for this workspace: that method is paced more slowly from now on
    assert worker.pacer.interval_of("chat.postMessage") == pytest.approx(
        worker.pacer.interval * 1.25
    )
    assert worker.pacer.interval_of("conversations.open") == worker.pacer.interval
    assert waiting.status == "queued" and waiting.last_error == "ratelimited"
    assert waiting.next_attempt_at is not None
    assert total.sent == 1
    assert delivered_ids(slack) == [message]
    # the second try looked in the DM's history before posting again
    assert slack.calls_to("conversations.history")[0].body["include_all_metadata"] in ("1", "true")


async def test_the_pacer_spaces_a_slowed_method_further_apart() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = delivery.Pacer(60, 0.0, monotonic=lambda: now[0], sleep=sleep)
    await pacer.wait("chat.postMessage")
    await pacer.wait("chat.postMessage")
    pacer.slow_down("chat.postMessage")
    pacer.slow_down("chat.postMessage")
    await pacer.wait("chat.postMessage")
    await pacer.wait("chat.postMessage")
    await pacer.wait("users.lookupByEmail")

    assert slept == pytest.approx([1.0, 1.0, 1.5625])


async def test_server_errors_are_retried_with_backoff_then_given_up(
    db_engine: Engine, slack: FakeSlackApi
) -> None:
    ada, ben = person(db_engine, "Ada", "UADA"), person(db_engine, "Ben", "UBEN")
    once = queue(db_engine, ada, "a")
    slack.fail_next("chat.postMessage", "internal_error", status=500)
    worker = DeliveryWorker(db_engine, client(slack), FAST)

    await run_until_delivered(worker, db_engine)
    never = queue(db_engine, ben, "b")
    for _ in range(3):
        slack.fail_next("chat.postMessage", "service_unavailable", status=503)
    patient = DeliveryOptions(
        messages_per_minute=60_000, channel_interval_s=0, backoff_base_s=0.05, max_attempts=3
    )
    await run_until_delivered(DeliveryWorker(db_engine, client(slack), patient), db_engine)

    assert delivered_ids(slack) == [once]
    stored = outbox(db_engine)
    assert stored[once].status == "sent" and stored[once].attempts == 2
    assert stored[never].status == "failed"
    assert stored[never].last_error == "service_unavailable (gave up after 3 tries)"


async def test_an_unreachable_slack_keeps_the_messages_queued(db_engine: Engine) -> None:
    ada = person(db_engine, "Ada", "UADA")
    message = queue(db_engine, ada, "a")
    nowhere = AsyncWebClient(token="x", base_url="http://127.0.0.1:9/api/", retry_handlers=[])

    stats = await DeliveryWorker(db_engine, nowhere, FAST).run_once()

    assert stats.retrying == 1
    stored = outbox(db_engine)[message]
    assert (stored.status, stored.last_error) == ("queued", "connection_error")


async def test_a_crash_before_the_post_sends_the_message_once_after_restart(
    db_engine: Engine, slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = person(db_engine, "Ada", "UADA")
    message = queue(db_engine, ada, "a")
    dying = client(slack)

    async def crash(**_: Any) -> Any:
        raise Crash()

    monkeypatch.setattr(dying, "chat_postMessage", crash)
    with pytest.raises(Crash):
        await DeliveryWorker(db_engine, dying, FAST).run_once()
    assert outbox(db_engine)[message].status == "sending"

    stats = await DeliveryWorker(db_engine, client(slack), FAST).run_once()

    assert (stats.sent, stats.found_sent) == (1, 0)
    assert delivered_ids(slack) == [message]
    assert outbox(db_engine)[message].status == "sent"


async def test_a_crash_after_the_post_never_sends_it_twice(
    db_engine: Engine, slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada, ben = person(db_engine, "Ada", "UADA"), person(db_engine, "Ben", "UBEN")
    first = queue(db_engine, ada, "a")
    second = queue(db_engine, ben, "b")

    def crash_before_recording(*_: Any, **__: Any) -> None:
        raise Crash()

    monkeypatch.setattr(delivery, "mark_sent", crash_before_recording)
    with pytest.raises(Crash):
        await DeliveryWorker(db_engine, client(slack), FAST).run_once()
    monkeypatch.undo()
    assert outbox(db_engine)[first].status == "sending"
    assert delivered_ids(slack) == [first]

    stats = await DeliveryWorker(db_engine, client(slack), FAST).run_once()

    assert (stats.found_sent, stats.sent) == (1, 1)
    assert sorted(delivered_ids(slack)) == [first, second]
    stored = outbox(db_engine)
    assert stored[first].status == "sent"
    [posted] = slack.messages("DUADA")
    assert stored[first].delivery_ref == f"DUADA:{posted['ts']}"


async def test_another_workers_message_is_left_alone_until_its_lease_ends(
    db_engine: Engine, slack: FakeSlackApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada = person(db_engine, "Ada", "UADA")
    message = queue(db_engine, ada, "a")
    leased = DeliveryOptions(messages_per_minute=60_000, channel_interval_s=0, lease_s=60)
    monkeypatch.setattr(delivery, "mark_sent", lambda *_, **__: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        await DeliveryWorker(db_engine, client(slack), leased).run_once()
    monkeypatch.undo()

    now = DeliveryWorker(db_engine, client(slack), leased)
    later = DeliveryWorker(
        db_engine, client(slack), leased, clock=lambda: utcnow() + timedelta(seconds=61)
    )

    assert (await now.run_once()).handled == 0
    assert (await later.run_once()).found_sent == 1
    assert delivered_ids(slack) == [message]


async def test_pacing_stays_under_slacks_limits(db_engine: Engine, slack: FakeSlackApi) -> None:
    slack.enforce(RateLimit("chat.postMessage", limit=1, window_s=0.3, per_channel=True))
    slack.enforce(RateLimit("chat.postMessage", limit=5, window_s=0.5))
    ada = person(db_engine, "Ada", "UADA")
    others = [person(db_engine, f"Rep{i}", f"UREP{i}") for i in range(5)]
    ids = [queue(db_engine, ada, f"ada-{i}") for i in range(3)]
    ids += [queue(db_engine, p, p.name) for p in others]
    options = DeliveryOptions(messages_per_minute=400, channel_interval_s=0.35, batch_size=4)

    stats = await DeliveryWorker(db_engine, client(slack), options).run_once()

    assert stats.sent == 8
    assert slack.rate_limited == 0
    assert sorted(delivered_ids(slack)) == sorted(ids)
