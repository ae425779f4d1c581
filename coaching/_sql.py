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


def _run(session: Session, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    conn = session.connection()
    if len(rows) == 1:
        conn.execute(stmt, dict(rows[0]))
    else:
        conn.execute(stmt, [dict(r) for r in rows])


def insert_ignore(
    session: Session, model: type[SQLModel], rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows, skipping any that clash on `keys`; returns how many were inserted."""
    if not rows:
        return 0
    table = table_of(model)
    stmt = (
        _insert(session, table)
        .on_conflict_do_nothing(index_elements=list(keys))
        .returning(*table.primary_key.columns)
    )
    conn = session.connection()
    # The driver's row count is not reliable for skipped rows; the returned keys are.
    if len(rows) == 1:
        return len(conn.execute(stmt, dict(rows[0])).fetchall())
    return len(conn.execute(stmt, [dict(r) for r in rows]).fetchall())


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
