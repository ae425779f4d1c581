"""The outbox: every message for a rep or manager, stored before anyone delivers it.

A message is written once per dedupe key, so re-running a step never queues a second copy.
The Slack bot claims queued messages, delivers them and marks them sent or failed; without
Slack the outbox is read from the command line and the web app. Managers who prefer a daily
digest get their alerts `held`, and `build_digests` gathers them into one message a day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching._sql import insert_ignore
from store.db import session_scope
from store.models import AlertPreference, OutboxMessage

logger = logging.getLogger(__name__)

KINDS = ("rep_feedback", "assignment", "manager_alert", "cohort_alert", "digest", "dispute")
STATUSES = ("queued", "sending", "sent", "failed", "held", "digested", "cancelled")


def enqueue(
    session: Session,
    *,
    kind: str,
    recipient_id: int,
    payload: dict[str, Any],
    dedupe_key: str,
    now: datetime,
    status: str = "queued",
    interaction_id: int | None = None,
    interaction_started_at: datetime | None = None,
) -> tuple[int, bool]:
    """Queue a message unless one with the same dedupe key exists; returns (id, created)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown message kind `{kind}`; known: {', '.join(KINDS)}")
    row = {
        "kind": kind,
        "recipient_id": recipient_id,
        "payload": payload,
        "dedupe_key": dedupe_key,
        "status": status,
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": None,
        "interaction_id": interaction_id,
        "interaction_started_at": interaction_started_at,
        "digest_id": None,
        "created_at": now,
        "sent_at": None,
    }
    created = insert_ignore(session, OutboxMessage, [row], keys=["dedupe_key"]) > 0
    message_id = session.exec(
        select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
    ).one()
    if created:
        logger.debug(
            "message queued",
            extra={"message_id": message_id, "kind": kind, "recipient_id": recipient_id},
        )
    assert message_id is not None
    return message_id, created


def alert_mode(session: Session, person_id: int, default: str) -> str:
    preference = session.get(AlertPreference, person_id)
    return preference.mode if preference is not None else default


def set_alert_mode(engine: Engine, person_id: int, mode: str, now: datetime) -> None:
    if mode not in ("immediate", "digest"):
        raise ValueError(f"Alert mode `{mode}` is not one of immediate, digest")
    with session_scope(engine) as session:
        preference = session.get(AlertPreference, person_id) or AlertPreference(person_id=person_id)
        preference.mode = mode
        preference.updated_at = now
        session.add(preference)


def cancel_pending(session: Session, dedupe_keys: list[str], reason: str) -> int:
    """Cancel queued or held messages (already sent ones stay sent)."""
    if not dedupe_keys:
        return 0
    result = session.connection().execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.dedupe_key).in_(dedupe_keys),
            col(OutboxMessage.status).in_(["queued", "held"]),
        )
        .values(status="cancelled", last_error=reason)
    )
    return int(result.rowcount or 0)


# -- delivery -------------------------------------------------------------------------------


def claim(
    engine: Engine, now: datetime, *, limit: int = 50, lease_s: float = 120.0
) -> list[OutboxMessage]:
    """Take up to `limit` deliverable messages and mark them `sending` (one worker each).

    Deliverable: queued and due (`next_attempt_at` unset or past), failed with a retry due, or
    `sending` whose lease ran out (a worker took it and stopped before recording the outcome;
    it may or may not have been delivered, so the deliverer must look before sending again).
    While `sending`, `next_attempt_at` is the end of the lease.
    """
    due = col(OutboxMessage.next_attempt_at).is_(None) | (col(OutboxMessage.next_attempt_at) <= now)
    with session_scope(engine) as session:
        stmt = (
            select(OutboxMessage)
            .where(
                or_(
                    (col(OutboxMessage.status) == "queued") & due,
                    (col(OutboxMessage.status) == "failed")
                    & col(OutboxMessage.next_attempt_at).is_not(None)
                    & (col(OutboxMessage.next_attempt_at) <= now),
                    (col(OutboxMessage.status) == "sending") & due,
                )
            )
            .order_by(col(OutboxMessage.created_at), col(OutboxMessage.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        messages = list(session.exec(stmt).all())
        for message in messages:
            message.status = "sending"
            message.attempts += 1
            message.first_attempt_at = message.first_attempt_at or now
            message.next_attempt_at = now + timedelta(seconds=lease_s)
            session.add(message)
    return messages


def mark_sent(engine: Engine, message_id: int, now: datetime, *, ref: str | None = None) -> None:
    """Record a delivery; `ref` says where the delivered message is (Slack: `channel:ts`)."""
    with session_scope(engine) as session:
        session.connection().execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .values(
                status="sent", sent_at=now, last_error=None, next_attempt_at=None, delivery_ref=ref
            )
        )


def mark_failed(
    engine: Engine, message_id: int, error: str, *, retry_at: datetime | None = None
) -> None:
    """Record a failed delivery; with `retry_at` it is claimed again from then on."""
    with session_scope(engine) as session:
        session.connection().execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .values(status="failed", last_error=error[:500], next_attempt_at=retry_at)
        )


def reschedule(engine: Engine, message_id: int, error: str, retry_at: datetime) -> None:
    """Put a message back in the queue after a passing failure (rate limit, outage)."""
    with session_scope(engine) as session:
        session.connection().execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .values(status="queued", last_error=error[:500], next_attempt_at=retry_at)
        )


def undelivered(engine: Engine, *, limit: int = 100) -> list[OutboxMessage]:
    """Messages that failed for good (no retry planned), newest first, with their reason."""
    with Session(engine) as session:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == "failed",
                col(OutboxMessage.next_attempt_at).is_(None),
            )
            .order_by(col(OutboxMessage.id).desc())
            .limit(limit)
        )
        return list(session.exec(stmt).all())


def requeue_stale(engine: Engine, older_than: datetime) -> int:
    """Put back `sending` messages a crashed worker left behind (created before the cut-off)."""
    with session_scope(engine) as session:
        result = session.connection().execute(
            update(OutboxMessage)
            .where(
                col(OutboxMessage.status) == "sending",
                col(OutboxMessage.created_at) < older_than,
            )
            .values(status="queued")
        )
        return int(result.rowcount or 0)


def list_messages(
    engine: Engine,
    *,
    status: str | None = None,
    recipient_id: int | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[OutboxMessage]:
    with Session(engine) as session:
        stmt = select(OutboxMessage)
        if status:
            stmt = stmt.where(OutboxMessage.status == status)
        if recipient_id is not None:
            stmt = stmt.where(OutboxMessage.recipient_id == recipient_id)
        if kind:
            stmt = stmt.where(OutboxMessage.kind == kind)
        stmt = stmt.order_by(col(OutboxMessage.id).desc()).limit(limit)
        return list(session.exec(stmt).all())


# -- digests --------------------------------------------------------------------------------


def digest_cutoff(now: datetime, hour_utc: int) -> datetime:
    """The most recent digest time at or before `now`."""
    now = now.astimezone(UTC)
    today = datetime.combine(now.date(), time(hour_utc), tzinfo=UTC)
    return today if now >= today else today - timedelta(days=1)


def build_digests(engine: Engine, now: datetime, *, hour_utc: int = 8) -> list[int]:
    """Gather each manager's held alerts from before the latest digest time into one message.

    One digest per manager per day (its dedupe key names the day); alerts held after the
    cut-off wait for the next day's digest. Returns the ids of digests created.
    """
    cutoff = digest_cutoff(now, hour_utc)
    created_ids: list[int] = []
    with session_scope(engine) as session:
        held = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.status == "held", col(OutboxMessage.created_at) < cutoff)
            .order_by(col(OutboxMessage.recipient_id), col(OutboxMessage.id))
        ).all()
        by_manager: dict[int, list[OutboxMessage]] = defaultdict(list)
        for message in held:
            by_manager[message.recipient_id].append(message)
        for manager_id, alerts in by_manager.items():
            day = cutoff.date().isoformat()
            payload = {
                "type": "digest",
                "day": day,
                "count": len(alerts),
                "items": [{"message_id": a.id, **a.payload} for a in alerts],
            }
            digest_id, created = enqueue(
                session,
                kind="digest",
                recipient_id=manager_id,
                payload=payload,
                dedupe_key=f"digest:{manager_id}:{day}",
                now=now,
            )
            if not created:
                continue
            created_ids.append(digest_id)
            session.connection().execute(
                update(OutboxMessage)
                .where(col(OutboxMessage.id).in_([a.id for a in alerts]))
                .values(status="digested", digest_id=digest_id)
            )
    return created_ids


# -- time to feedback -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Breach:
    message_id: int
    recipient_id: int
    interaction_id: int | None
    interaction_started_at: datetime
    status: str
    sent_at: datetime | None
    hours: float
    """Hours from the interaction to delivery, or to now when not delivered."""


def feedback_breaches(
    engine: Engine,
    now: datetime,
    *,
    sla_hours: float = 48,
    since: datetime | None = None,
) -> list[Breach]:
    """Rep feedback not delivered within the SLA: late deliveries and undelivered ones older
    than the SLA."""
    limit = timedelta(hours=sla_hours)
    with Session(engine) as session:
        stmt = select(OutboxMessage).where(
            col(OutboxMessage.kind).in_(["rep_feedback"]),
            col(OutboxMessage.interaction_started_at).is_not(None),
            col(OutboxMessage.interaction_started_at) < now - limit,
            col(OutboxMessage.status) != "cancelled",
        )
        if since is not None:
            stmt = stmt.where(col(OutboxMessage.interaction_started_at) >= since)
        rows = session.exec(stmt.order_by(col(OutboxMessage.interaction_started_at))).all()
    breaches = []
    for m in rows:
        assert m.interaction_started_at is not None and m.id is not None
        delivered = m.sent_at if m.status == "sent" else None
        elapsed = (delivered or now) - m.interaction_started_at
        if elapsed <= limit:
            continue
        breaches.append(
            Breach(
                message_id=m.id,
                recipient_id=m.recipient_id,
                interaction_id=m.interaction_id,
                interaction_started_at=m.interaction_started_at,
                status=m.status,
                sent_at=delivered,
                hours=round(elapsed.total_seconds() / 3600, 2),
            )
        )
    return breaches
