"""Small portable SQL helpers: inserts that ignore or add up on conflict, on SQLite and
PostgreSQL alike. Rows go in as bound parameters, so each statement compiles once and is
served from SQLAlchemy's cache afterwards."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel


def table_of(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _insert(session: Session, table: Table) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _run(session: Session, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    conn = session.connection()
    if len(rows) == 1:
        return int(conn.execute(stmt, dict(rows[0])).rowcount or 0)
    return int(conn.execute(stmt, [dict(r) for r in rows]).rowcount or 0)


def insert_ignore(
    session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows, skipping any that clash on `keys`; returns how many were inserted
    (exact for a single row)."""
    if not rows:
        return 0
    stmt = _insert(session, table_of(model)).on_conflict_do_nothing(index_elements=list(keys))
    return _run(session, stmt, rows)


def insert_or_add(
    session: Session,
    model: type[SQLModel],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    add: Sequence[str],
) -> None:
    """Insert rows; where one exists for `keys`, add the `add` columns to it instead."""
    if not rows:
        return
    table = table_of(model)
    stmt = _insert(session, table)
    update = {c: table.c[c] + stmt.excluded[c] for c in add}
    _run(session, stmt.on_conflict_do_update(index_elements=list(keys), set_=update), rows)
