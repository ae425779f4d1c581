"""A small organisation to coach: teams, reps, managers and scored calls written straight
into the tables the scorer fills."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from coaching import steps
from coaching.catalogue import load_catalogue
from coaching.context import CoachingContext
from coaching.graph import CoachingPipeline, open_pipeline, pending_interactions
from config.coaching import CoachingRules
from config.rubric import SHIPPED_RUBRIC_DIR, Rubric, load_rubric
from store.db import make_engine, migrate, session_scope
from store.models import (
    Access,
    Evaluation,
    Interaction,
    InteractionKind,
    Person,
    RubricVersion,
    Score,
    Team,
    TeamManager,
)

FIXTURES = Path(__file__).parent / "fixtures"
SUPPORT = load_rubric(SHIPPED_RUBRIC_DIR / "support.yaml")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CRITERIA = [c.id for c in SUPPORT.criteria]


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def evidence(criterion_id: str, level: int | None, *, turn: int = 3) -> list[dict[str, Any]]:
    """Check results as a judge would store them: the awarded level's first check observed,
    with a quote from the turn it was heard in."""
    if level is None:
        return []
    criterion = SUPPORT.criterion(criterion_id)
    check = criterion.levels[level].checks[0]  # type: ignore[index]
    return [
        {
            "id": check.id,
            "observed": True,
            "turn": turn,
            "start_s": 60.0 + turn * 5,
            "quote": f"{criterion_id} said at level {level}",
        }
    ]


@dataclass
class Org:
    engine: Engine
    rubric: Rubric = SUPPORT
    _n: int = 0
    managers: dict[str, Person] = field(default_factory=dict)

    def __post_init__(self) -> None:
        with session_scope(self.engine) as session:
            if session.get(RubricVersion, self.rubric.version) is None:
                session.add(
                    RubricVersion(
                        version=self.rubric.version,
                        role=self.rubric.role,
                        name=self.rubric.name,
                        content=self.rubric.model_dump(mode="json"),
                        live=True,
                    )
                )

    def team(self, slug: str, *, manager: bool = True) -> Team:
        with session_scope(self.engine) as session:
            team = Team(slug=slug, name=slug.title())
            session.add(team)
            session.flush()
            if manager:
                boss = Person(
                    external_id=f"mgr-{slug}", name=f"Manager {slug}", access=Access.manager
                )
                session.add(boss)
                session.flush()
                session.add(TeamManager(team_id=team.id, person_id=boss.id))
                self.managers[slug] = boss
            return team

    def rep(
        self,
        team: Team | None,
        name: str,
        *,
        role: str = "support",
        pilot: bool = False,
        manager: Person | None = None,
    ) -> Person:
        with session_scope(self.engine) as session:
            person = Person(
                external_id=name.lower(),
                name=name,
                email=f"{name.lower()}@example.com",
                role=role,
                team_id=team.id if team else None,
                pilot=pilot,
                manager_id=manager.id if manager else None,
            )
            session.add(person)
            return person

    def call(
        self,
        rep: Person,
        at: datetime,
        levels: dict[str, int | None],
        *,
        kind: InteractionKind = InteractionKind.call,
        meta: dict[str, Any] | None = None,
        scored: bool = True,
    ) -> int:
        """Store an interaction with one evaluation and a score per criterion given."""
        self._n += 1
        with session_scope(self.engine) as session:
            interaction = Interaction(
                external_id=f"call-{self._n}",
                source="test",
                kind=kind,
                rep_id=rep.id,
                team_id=rep.team_id,
                started_at=at,
                content_hash=hashlib.sha256(f"{self._n}".encode()).hexdigest(),
                meta=meta or {},
            )
            session.add(interaction)
            session.flush()
            evaluation = Evaluation(
                interaction_id=interaction.id,
                rubric_version=self.rubric.version,
                judge="test@1",
                status="scored" if scored else "unscored",
                weighted_total=self.rubric.weighted_total(levels),
            )
            session.add(evaluation)
            session.flush()
            if scored:
                for criterion_id, level in levels.items():
                    session.add(
                        Score(
                            evaluation_id=evaluation.id,
                            interaction_id=interaction.id,
                            rep_id=rep.id,
                            criterion_id=criterion_id,
                            level=level,
                            checks=evidence(criterion_id, level),
                            scored_at=at,
                        )
                    )
            assert interaction.id is not None
            return interaction.id

    def calls(
        self,
        rep: Person,
        criterion_levels: list[int | None],
        *,
        criterion: str = "acknowledge_concern",
        start: datetime = T0,
        every: timedelta = timedelta(days=1),
        others: int = 3,
    ) -> list[int]:
        """One call per level given for `criterion`, the other criteria at `others`."""
        ids = []
        for i, level in enumerate(criterion_levels):
            levels: dict[str, int | None] = dict.fromkeys(CRITERIA, others)
            levels[criterion] = level
            ids.append(self.call(rep, start + i * every, levels))
        return ids


# -- databases: migrated once per session, emptied for each test ----------------------------


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "coachloop.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def _postgres_schema() -> Iterator[Engine]:
    import uuid

    from tests.conftest import _drop_postgres_schema, _postgres_engine

    schema = f"t_coaching_{uuid.uuid4().hex[:8]}"
    engine = _postgres_engine(schema)
    migrate(engine)
    yield engine
    engine.dispose()
    _drop_postgres_schema(schema)


def _empty_postgres(engine: Engine) -> None:
    names = [t.name for t in SQLModel.metadata.sorted_tables]
    present = set(inspect(engine).get_table_names())
    names += [n for n in ("checkpoints", "checkpoint_blobs", "checkpoint_writes") if n in present]
    quoted = ", ".join(f'"{n}"' for n in names if n in present)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE TABLE {quoted} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated database on SQLite and on PostgreSQL (migrated once, emptied per
    test, which keeps these tests quick)."""
    if request.param == "sqlite":
        import shutil

        path = tmp_path / "coachloop.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        engine = make_engine(f"sqlite:///{path}")
        yield engine
        engine.dispose()
        return
    engine = request.getfixturevalue("_postgres_schema")
    _empty_postgres(engine)
    yield engine


@pytest.fixture
def org(db_engine: Engine) -> Org:
    return Org(db_engine)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(days=60))


@pytest.fixture
def rules() -> CoachingRules:
    return CoachingRules()


@pytest.fixture
def catalogue():
    return load_catalogue(FIXTURES / "scenarios")


@pytest.fixture
def pipeline(
    db_engine: Engine, tmp_path: Path, rules: CoachingRules, catalogue: Any, clock: Clock
) -> Iterator[CoachingPipeline]:
    with open_pipeline(
        db_engine, tmp_path / "data", rules=rules, catalogue=catalogue, clock=clock
    ) as p:
        yield p


Coach = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def coach(db_engine: Engine, rules: CoachingRules, catalogue: Any, clock: Clock) -> Coach:
    """Run the pipeline's steps for every pending interaction without the graph, as a job
    queue worker would: quicker, for tests about the rules rather than the graph."""
    context = CoachingContext(engine=db_engine, rules=rules, catalogue=catalogue, clock=clock)

    def run(ids: list[int] | None = None) -> list[dict[str, Any]]:
        todo = pending_interactions(db_engine) if ids is None else ids
        return [steps.process_interaction(context, i) for i in todo]

    return run


def rows(engine: Engine, model: Any, **where: Any) -> list[Any]:
    from sqlmodel import select

    with Session(engine) as session:
        stmt = select(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return list(session.exec(stmt).all())
