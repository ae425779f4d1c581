"""Store parsed calls: bulk inserts, batched duplicate look-ups, reps and teams on the way."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Table, func, insert, or_, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, SQLModel

from ingest.calls import SPEAKER_CODE, ParsedCall
from store.models import Access, utcnow

logger = logging.getLogger(__name__)

UnknownReps = Literal["create", "reject"]
Status = Literal["new", "duplicate", "rejected"]

_INTERACTION: Table = SQLModel.metadata.tables["interaction"]
_TURN: Table = SQLModel.metadata.tables["turn"]
_PERSON: Table = SQLModel.metadata.tables["person"]
_TEAM: Table = SQLModel.metadata.tables["team"]
_FIX_ORG = (
    "import it first (`coachloop org import FILE`) or set COACHLOOP_INGEST__UNKNOWN_REPS=create"
)


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What happened to one call: stored (`new`), already there (`duplicate`), or set aside."""

    status: Status
    interaction_id: int | None = None
    """The stored interaction (for a duplicate, the one already there)."""
    reason: str | None = None
    kind: str | None = None


@dataclass(slots=True)
class SaveResult:
    outcomes: list[CallOutcome] = field(default_factory=list)
    """One per call, in the order the calls were given."""

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def new_ids(self) -> list[int]:
        return [o.interaction_id for o in self.outcomes if o.status == "new" and o.interaction_id]


def save_calls(
    target: Session | Engine | Connection,
    calls: Sequence[ParsedCall],
    *,
    unknown_reps: UnknownReps = "create",
    chunk_size: int = 500,
) -> SaveResult:
    """Store calls and their turns; calls already stored are reported as duplicates.

    A call is a duplicate when its content hash (speakers and text of its turns) or its
    (source, external id) is already stored with the same turns. The same (source, external
    id) with different turns, an unknown rep under `unknown_reps="reject"`, or a problem from
    `ParsedCall.problems()` sets the call aside with a reason; the others are still stored.

    Args:
        target: An engine (each chunk is committed on its own, so a crash loses at most one
            chunk and a re-run skips what was stored), or a session or connection whose
            transaction the caller commits.
        calls: The calls, in any order.
        unknown_reps: Create a rep (named after the reference, in the call's team if given)
            or set the call aside when its rep is not in the organisation. Unknown team slugs
            follow the same rule.
        chunk_size: Calls per look-up and insert round.

    Returns:
        One outcome per call, in order.
    """
    result = SaveResult()
    for offset in range(0, len(calls), chunk_size):
        chunk = calls[offset : offset + chunk_size]
        if isinstance(target, Engine):
            result.outcomes.extend(save_chunk_committed(target, chunk, unknown_reps))
        else:
            conn = target.connection() if isinstance(target, Session) else target
            result.outcomes.extend(save_chunk(conn, chunk, unknown_reps))
    return result


def save_chunk_committed(
    engine: Engine, calls: Sequence[ParsedCall], unknown_reps: UnknownReps
) -> list[CallOutcome]:
    """One chunk in its own transaction, retried once if a concurrent writer got there first."""
    try:
        with engine.begin() as conn:
            return save_chunk(conn, calls, unknown_reps)
    except IntegrityError:
        logger.warning("chunk raced a concurrent writer; retrying", extra={"calls": len(calls)})
    with engine.begin() as conn:
        return save_chunk(conn, calls, unknown_reps)


def _rejected(reason: str, kind: str) -> CallOutcome:
    return CallOutcome(status="rejected", reason=reason, kind=kind)


def save_chunk(
    conn: Connection, calls: Sequence[ParsedCall], unknown_reps: UnknownReps
) -> list[CallOutcome]:
    """Store one chunk inside the caller's transaction (see :func:`save_calls`)."""
    outcomes: list[CallOutcome | None] = [None] * len(calls)
    hashes: list[str] = [""] * len(calls)
    pending: list[int] = []
    for i, call in enumerate(calls):
        problems = call.problems()
        if problems:
            outcomes[i] = _rejected(
                f"call `{call.external_id}`: {'; '.join(problems)}", "bad_field"
            )
            continue
        hashes[i] = call.content_hash()
        pending.append(i)

    stored_by_hash, stored_by_key = _lookup_existing(conn, calls, hashes, pending)

    first_by_hash: dict[str, int] = {}
    first_by_key: dict[tuple[str, str], int] = {}
    copies: list[tuple[int, int]] = []
    to_insert: list[int] = []
    for i in pending:
        call = calls[i]
        key = (call.source, call.external_id)
        if hashes[i] in stored_by_hash:
            outcomes[i] = CallOutcome(status="duplicate", interaction_id=stored_by_hash[hashes[i]])
        elif key in stored_by_key:
            outcomes[i] = _rejected(
                f"call `{call.external_id}` from `{call.source}` is already stored (interaction "
                f"{stored_by_key[key]}) with different turns; give this one another id or "
                "another --source",
                "conflict",
            )
        elif hashes[i] in first_by_hash:
            copies.append((i, first_by_hash[hashes[i]]))
        elif key in first_by_key:
            outcomes[i] = _rejected(
                f"call `{call.external_id}` from `{call.source}` appears twice with different "
                "turns in the same run; give one of them another id",
                "conflict",
            )
        else:
            first_by_hash[hashes[i]] = i
            first_by_key[key] = i
            to_insert.append(i)

    people = _People(conn, unknown_reps)
    people.prepare([calls[i] for i in to_insert])
    rows: list[dict[str, Any]] = []
    inserted: list[int] = []
    now = utcnow()
    for i in to_insert:
        call = calls[i]
        try:
            rep_id, team_id = people.resolve(call)
        except _OrgProblem as exc:
            outcomes[i] = _rejected(f"call `{call.external_id}`: {exc}", exc.kind)
            continue
        inserted.append(i)
        rows.append(
            {
                "external_id": call.external_id,
                "source": call.source,
                "kind": call.kind,
                "channel": call.channel,
                "rep_id": rep_id,
                "team_id": team_id,
                "started_at": call.started_at,
                "duration_s": call.resolved_duration(),
                "content_hash": hashes[i],
                "turn_count": len(call.turns),
                "meta": call.meta,
                "ingested_at": now,
            }
        )
    if rows:
        # content hashes are unique, so they map returned ids back without ordering rows
        statement = insert(_INTERACTION).returning(_INTERACTION.c.content_hash, _INTERACTION.c.id)
        id_by_hash: dict[str, int] = dict(conn.execute(statement, rows).all())
        ids = [id_by_hash[hashes[i]] for i in inserted]
        turn_rows: list[tuple[int, int, str, float | None, float | None, str]] = []
        for i, interaction_id in zip(inserted, ids, strict=True):
            outcomes[i] = CallOutcome(status="new", interaction_id=interaction_id)
            for idx, turn in enumerate(calls[i].turns):
                turn_rows.append(
                    (
                        interaction_id,
                        idx,
                        SPEAKER_CODE[turn.speaker],
                        turn.start_s,
                        turn.end_s,
                        turn.text.strip(),
                    )
                )
        _insert_turns(conn, turn_rows)
    for i, first in copies:
        original = outcomes[first]
        assert original is not None
        if original.status == "new":
            outcomes[i] = CallOutcome(status="duplicate", interaction_id=original.interaction_id)
        else:
            outcomes[i] = original
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(calls)
    return done


_TURN_COLUMNS = ("interaction_id", "idx", "speaker", "start_s", "end_s", "text")


def _insert_turns(
    conn: Connection, rows: list[tuple[int, int, str, float | None, float | None, str]]
) -> None:
    """The bulk of a backfill: COPY on PostgreSQL, a plain executemany on SQLite."""
    if not rows:
        return
    columns = ", ".join(_TURN_COLUMNS)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        dbapi: Any = conn.connection.dbapi_connection
        with dbapi.cursor() as cursor:
            with cursor.copy(f"COPY turn ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        return
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in _TURN_COLUMNS)
        conn.exec_driver_sql(f"INSERT INTO turn ({columns}) VALUES ({marks})", rows)
        return
    conn.execute(insert(_TURN), [dict(zip(_TURN_COLUMNS, row, strict=True)) for row in rows])


def _lookup_existing(
    conn: Connection, calls: Sequence[ParsedCall], hashes: list[str], pending: list[int]
) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """Stored interactions with any of these hashes, or any of these (source, external id)."""
    if not pending:
        return {}, {}
    wanted = {hashes[i] for i in pending}
    query = select(_INTERACTION.c.content_hash, _INTERACTION.c.id).where(
        _INTERACTION.c.content_hash.in_(wanted)
    )
    by_hash = dict(conn.execute(query).all())
    ids_by_source: dict[str, set[str]] = defaultdict(set)
    for i in pending:
        ids_by_source[calls[i].source].add(calls[i].external_id)
    by_key: dict[tuple[str, str], int] = {}
    for source, external_ids in ids_by_source.items():
        query = select(_INTERACTION.c.external_id, _INTERACTION.c.id).where(
            _INTERACTION.c.source == source, _INTERACTION.c.external_id.in_(external_ids)
        )
        for external_id, id_ in conn.execute(query):
            by_key[(source, external_id)] = id_
    return by_hash, by_key


class _OrgProblem(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class _People:
    """Reps by external id or e-mail and teams by slug, created on demand when allowed."""

    def __init__(self, conn: Connection, unknown: UnknownReps) -> None:
        self._conn = conn
        self._unknown = unknown
        self._reps: dict[str, tuple[int, int | None]] = {}
        self._reps_by_email: dict[str, tuple[int, int | None]] = {}
        self._teams: dict[str, int] = {}

    def prepare(self, calls: Sequence[ParsedCall]) -> None:
        refs = {c.rep for c in calls}
        slugs = {c.team for c in calls if c.team}
        if refs:
            lowered = {r.lower() for r in refs if "@" in r}
            condition: ColumnElement[bool] = _PERSON.c.external_id.in_(refs)
            if lowered:
                condition = or_(condition, func.lower(_PERSON.c.email).in_(lowered))
            query = select(_PERSON.c.id, _PERSON.c.external_id, _PERSON.c.email, _PERSON.c.team_id)
            for id_, external_id, email, team_id in self._conn.execute(query.where(condition)):
                self._reps[external_id] = (id_, team_id)
                if email:
                    self._reps_by_email[email.lower()] = (id_, team_id)
        if slugs:
            teams = select(_TEAM.c.slug, _TEAM.c.id).where(_TEAM.c.slug.in_(slugs))
            for slug, team_id in self._conn.execute(teams):
                self._teams[slug] = team_id

    def _team(self, slug: str) -> int:
        if slug in self._teams:
            return self._teams[slug]
        if self._unknown == "reject":
            raise _OrgProblem(f"team `{slug}` does not exist; {_FIX_ORG}", "unknown_team")
        statement = insert(_TEAM).returning(_TEAM.c.id)
        team_id = self._conn.execute(
            statement, {"slug": slug, "name": slug, "created_at": utcnow()}
        )
        self._teams[slug] = team_id.scalar_one()
        logger.info("team created", extra={"team_id": self._teams[slug]})
        return self._teams[slug]

    def resolve(self, call: ParsedCall) -> tuple[int, int | None]:
        """(rep id, team id) for a call: its own team, else the rep's team."""
        team_id = self._team(call.team) if call.team else None
        found = self._reps.get(call.rep) or self._reps_by_email.get(call.rep.lower())
        if found is None:
            if self._unknown == "reject":
                raise _OrgProblem(
                    f"rep `{call.rep}` is not in the organisation; {_FIX_ORG}", "unknown_rep"
                )
            row = {
                "external_id": call.rep,
                "name": call.rep,
                "email": call.rep if "@" in call.rep else None,
                "access": Access.rep,
                "team_id": team_id,
                "pilot": False,
                "active": True,
                "created_at": utcnow(),
            }
            rep_id = self._conn.execute(insert(_PERSON).returning(_PERSON.c.id), row).scalar_one()
            found = (rep_id, team_id)
            self._reps[call.rep] = found
            logger.info("rep created", extra={"person_id": rep_id, "pii.rep": call.rep})
        rep_id, rep_team = found
        return rep_id, team_id if team_id is not None else rep_team
