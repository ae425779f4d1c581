from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store import Interaction, Person, Speaker, Team, Turn


def test_interaction_with_turns_round_trips(session: Session) -> None:
    team = Team(slug="north", name="North")
    session.add(team)
    session.flush()
    rep = Person(external_id="r1", name="Ada", team_id=team.id, role="support")
    session.add(rep)
    session.flush()
    call = Interaction(
        external_id="c1",
        source="json",
        rep_id=rep.id,
        team_id=team.id,
        started_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        content_hash="h1",
    )
    session.add(call)
    session.flush()
    session.add(Turn(interaction_id=call.id, idx=0, speaker=Speaker.agent, start_s=0.0, text="Hi"))
    session.commit()

    stored = session.exec(select(Interaction)).one()
    turns = session.exec(select(Turn).where(Turn.interaction_id == stored.id)).all()

    assert stored.started_at == datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    assert [t.text for t in turns] == ["Hi"]


def test_same_content_hash_is_rejected(session: Session) -> None:
    rep = Person(external_id="r1", name="Ada")
    session.add(rep)
    session.flush()
    when = datetime(2026, 11, 2, tzinfo=UTC)
    session.add(
        Interaction(external_id="a", source="s", rep_id=rep.id, started_at=when, content_hash="h")
    )
    session.commit()
    session.add(
        Interaction(external_id="b", source="s", rep_id=rep.id, started_at=when, content_hash="h")
    )

    with pytest.raises(IntegrityError):
        session.commit()


def test_migrations_build_the_schema_the_models_declare(db_engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    with db_engine.connect() as connection:
        diffs = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)

    # SQLite has no INCLUDE, so its migration keeps the daily counts in the index key
    sqlite_only = {"ix_criteriondaily_team_counts"} if db_engine.dialect.name == "sqlite" else set()
    unexpected = [d for d in diffs if not (d[0].endswith("_index") and d[1].name in sqlite_only)]
    assert unexpected == []
