"""A small organisation for the web app's tests, built through the real coaching pipeline.

Two support teams and a team lead, a month of scored calls with evidence quoted from the
transcript, one practice session, imported outcomes, and delivered feedback (some late). The
levels are planted so the rules fire: in `north`, three of five reps sit at level 1 on
`confirm_resolution` (a cohort response waiting for the manager), and `eve` declines on
`acknowledge_concern`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import scenarios
from coaching.catalogue import load_catalogue
from coaching.graph import open_pipeline
from coaching.outbox import mark_sent
from config.coaching import CoachingRules
from config.rubric import Rubric, RubricLibrary
from store.db import session_scope
from store.models import (
    Access,
    CohortDecision,
    Evaluation,
    Interaction,
    InteractionKind,
    OutboxMessage,
    Outcome,
    Person,
    RubricVersion,
    Score,
    Speaker,
    Team,
    TeamManager,
    Turn,
)
from web.users import set_demo_passwords

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PASSWORD = "web-test-password"
RUBRICS = RubricLibrary.from_dir()
SUPPORT = RUBRICS.for_role("support")
LEAD = RUBRICS.for_role("team-lead")

# where each criterion's evidence sits in a call's turns
_TURN_OF = {0: 2, 1: 3, 2: 5, 3: 6}
_PHRASES = {
    1: "Right, I'll just sort that out now",
    2: "Okay, I can do that for you today",
    3: "I hear this has cost you evenings online; I'll fix it and text you by Friday",
}


@dataclass
class Seed:
    engine: Engine
    data_dir: Path
    people: dict[str, int] = field(default_factory=dict)
    teams: dict[str, int] = field(default_factory=dict)
    calls: dict[str, list[int]] = field(default_factory=dict)
    practice_id: int | None = None
    pending_decisions: list[int] = field(default_factory=list)

    def person(self, external_id: str) -> int:
        return self.people[external_id]


def quote_for(criterion_id: str, level: int) -> str:
    return f"{_PHRASES[level]} ({criterion_id.replace('_', ' ')})"


def _checks(
    rubric: Rubric, criterion_id: str, level: int | None, turn: int, start_s: float
) -> list[dict[str, Any]]:
    if level is None:
        return []
    criterion = rubric.criterion(criterion_id)
    quote = quote_for(criterion_id, level)
    checks = []
    levels = (1,) if level == 1 else tuple(range(2, level + 1))
    for lvl in levels:
        for check in criterion.levels[lvl].checks:  # type: ignore[index]
            checks.append(
                {"id": check.id, "observed": True, "turn": turn, "start_s": start_s, "quote": quote}
            )
    for lvl in range(max(2, level + 1), 4):
        for check in criterion.levels[lvl].checks:  # type: ignore[index]
            checks.append({"id": check.id, "observed": False})
    return checks


def _turn_texts(
    rubric: Rubric, name: str, levels: dict[str, int | None]
) -> list[tuple[Speaker, str]]:
    texts: list[tuple[Speaker, str]] = [
        (Speaker.agent, f"Hello, you're through to Harbor, {name} speaking."),
        (Speaker.customer, "Hi, my broadband keeps dropping every evening this week."),
        (Speaker.agent, ""),
        (Speaker.agent, ""),
        (Speaker.customer, "Okay, thank you."),
        (Speaker.agent, ""),
        (Speaker.agent, ""),
        (Speaker.customer, "Thanks, bye."),
    ]
    for k, criterion in enumerate(rubric.criteria):
        level = levels.get(criterion.id)
        turn = _TURN_OF[k]
        text = quote_for(criterion.id, level) if level else "Let me have a look at that."
        texts[turn] = (texts[turn][0], f"{text}. Anything else on the account?")
    return texts


class _Builder:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.n = 0

    def rubric_versions(self) -> None:
        with session_scope(self.engine) as session:
            for rubric in (SUPPORT, LEAD):
                if session.get(RubricVersion, rubric.version) is None:
                    session.add(
                        RubricVersion(
                            version=rubric.version,
                            role=rubric.role,
                            name=rubric.name,
                            content=rubric.model_dump(mode="json"),
                            live=True,
                        )
                    )

    def team(self, slug: str, manager: str | None) -> tuple[int, int | None]:
        with session_scope(self.engine) as session:
            team = Team(slug=slug, name=slug.title())
            session.add(team)
            session.flush()
            boss_id = None
            if manager:
                boss = Person(
                    external_id=manager,
                    name=f"Manager {slug.title()}",
                    email=f"{manager}@example.com",
                    access=Access.manager,
                )
                session.add(boss)
                session.flush()
                session.add(TeamManager(team_id=team.id, person_id=boss.id))
                boss_id = boss.id
            assert team.id is not None
            return team.id, boss_id

    def person(self, external_id: str, name: str, **fields: Any) -> int:
        with session_scope(self.engine) as session:
            person = Person(
                external_id=external_id, name=name, email=f"{external_id}@example.com", **fields
            )
            session.add(person)
            session.flush()
            assert person.id is not None
            return person.id

    def call(
        self,
        rep_id: int,
        team_id: int | None,
        name: str,
        at: datetime,
        levels: dict[str, int | None],
        rubric: Rubric,
        kind: InteractionKind = InteractionKind.call,
    ) -> int:
        self.n += 1
        texts = _turn_texts(rubric, name, levels)
        with session_scope(self.engine) as session:
            interaction = Interaction(
                external_id=f"call-{self.n:03d}",
                source="practice" if kind == InteractionKind.practice else "test",
                kind=kind,
                channel="chat" if kind == InteractionKind.practice else "phone",
                rep_id=rep_id,
                team_id=team_id,
                started_at=at,
                duration_s=8 * 9.0,
                content_hash=hashlib.sha256(f"web-{self.n}".encode()).hexdigest(),
                turn_count=len(texts),
            )
            session.add(interaction)
            session.flush()
            assert interaction.id is not None
            for idx, (speaker, text) in enumerate(texts):
                session.add(
                    Turn(
                        interaction_id=interaction.id,
                        idx=idx,
                        speaker=speaker,
                        start_s=idx * 9.0,
                        end_s=idx * 9.0 + 8,
                        text=text,
                    )
                )
            evaluation = Evaluation(
                interaction_id=interaction.id,
                rubric_version=rubric.version,
                judge="keyword@1",
                status="scored",
                weighted_total=rubric.weighted_total(levels),
            )
            session.add(evaluation)
            session.flush()
            for k, criterion in enumerate(rubric.criteria):
                level = levels.get(criterion.id)
                turn = _TURN_OF[k]
                session.add(
                    Score(
                        evaluation_id=evaluation.id,
                        interaction_id=interaction.id,
                        rep_id=rep_id,
                        criterion_id=criterion.id,
                        level=level,
                        confidence=0.9,
                        checks=_checks(rubric, criterion.id, level, turn, turn * 9.0),
                        scored_at=at,
                    )
                )
            return interaction.id


def _levels(rubric: Rubric, base: int, **override: int | None) -> dict[str, int | None]:
    levels: dict[str, int | None] = {c.id: base for c in rubric.criteria}
    levels.update(override)
    return levels


def seed_org(engine: Engine, data_dir: Path) -> Seed:
    """Build the organisation in an empty, migrated database."""
    build = _Builder(engine)
    build.rubric_versions()
    seed = Seed(engine=engine, data_dir=data_dir)
    north, north_boss = build.team("north", "mgr-north")
    south, south_boss = build.team("south", "mgr-south")
    seed.teams = {"north": north, "south": south}
    assert north_boss is not None and south_boss is not None
    seed.people["mgr-north"], seed.people["mgr-south"] = north_boss, south_boss
    seed.people["admin"] = build.person("admin", "Ada Admin", access=Access.admin)

    start = NOW - timedelta(days=28)
    plans: dict[str, tuple[int, str, list[dict[str, int | None]]]] = {}
    c = "confirm_resolution"
    a = "acknowledge_concern"
    plans["alice"] = (north, "support", [_levels(SUPPORT, 3, **{c: 1}) for _ in range(8)])
    plans["bob"] = (
        north,
        "support",
        [_levels(SUPPORT, 2, **{c: lv}) for lv in (1, 1, 2, 1, 1, 1, 2, 1)],
    )
    plans["cara"] = (
        north,
        "support",
        [_levels(SUPPORT, 2, **{c: lv}) for lv in (1, 2, 1, 1, 1, 1, 1, 1)],
    )
    plans["dan"] = (north, "support", [_levels(SUPPORT, 3) for _ in range(8)])
    plans["eve"] = (
        north,
        "support",
        [_levels(SUPPORT, 3, **{a: lv}) for lv in (3, 3, 3, 3, 3, 3, 2, 1)],
    )
    plans["sam"] = (south, "support", [_levels(SUPPORT, 2) for _ in range(8)])
    plans["tia"] = (south, "support", [_levels(SUPPORT, lv) for lv in (1, 2, 3, 2, 3, 2, 3, 3)])
    for external_id, (team_id, role, calls) in plans.items():
        boss = north_boss if team_id == north else south_boss
        rep_id = build.person(
            external_id, external_id.title(), role=role, team_id=team_id, manager_id=boss,
            pilot=external_id in ("alice", "dan"),
        )  # fmt: skip
        seed.people[external_id] = rep_id
        seed.calls[external_id] = [
            build.call(rep_id, team_id, external_id.title(), start + timedelta(days=3.5 * k, hours=k % 5), levels, SUPPORT)
            for k, levels in enumerate(calls)
        ]  # fmt: skip
    lena = build.person("lena", "Lena Lead", role="team-lead", team_id=north, manager_id=north_boss)
    seed.people["lena"] = lena
    seed.calls["lena"] = [
        build.call(lena, north, "Lena", start + timedelta(days=9 * k + 1), _levels(LEAD, 2 + k % 2), LEAD)
        for k in range(3)
    ]  # fmt: skip
    seed.people["locky"] = build.person("locky", "Locky Out", role="support", team_id=south)
    seed.practice_id = build.call(
        seed.people["tia"], south, "Tia", NOW - timedelta(days=2),
        _levels(SUPPORT, 3, **{c: 2}), SUPPORT, kind=InteractionKind.practice,
    )  # fmt: skip

    catalogue = load_catalogue(Path(scenarios.__file__).parent / "data")
    with open_pipeline(
        engine, data_dir, rules=CoachingRules(), catalogue=catalogue, clock=lambda: NOW
    ) as pipeline:
        report = pipeline.run()
    assert not report.failures, report.failures

    _deliver_feedback(engine)
    _outcomes(engine, seed)
    set_demo_passwords(engine, password=PASSWORD, now=NOW)
    with Session(engine) as session:
        seed.pending_decisions = [
            d
            for d in session.exec(
                select(CohortDecision.id).where(CohortDecision.status == "pending")
            )
            if d is not None
        ]
    return seed


def _deliver_feedback(engine: Engine) -> None:
    """Feedback went out about two hours after most calls; every fifth one 60 hours late."""
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.id, OutboxMessage.interaction_started_at)
            .where(OutboxMessage.kind == "rep_feedback")
            .order_by(col(OutboxMessage.id))
        ).all()
    for k, (message_id, started) in enumerate(rows):
        assert message_id is not None and started is not None
        if started.tzinfo is None:
            started = started.replace(tzinfo=UTC)
        if k % 7 == 6:
            continue  # still queued
        delay = timedelta(hours=60 if k % 5 == 4 else 2)
        mark_sent(engine, message_id, started + delay)


def _outcomes(engine: Engine, seed: Seed) -> None:
    """CSAT per rep for August (before coaching) and October (during it)."""
    with session_scope(engine) as session:
        for k, name in enumerate(("alice", "bob", "cara", "dan", "eve", "lena")):
            rep_id = seed.people[name]
            for start, end, value in (
                (date(2026, 8, 1), date(2026, 8, 31), 3.6 + k * 0.1),
                (date(2026, 10, 1), date(2026, 10, 31), 3.9 + k * 0.1),
            ):
                session.add(
                    Outcome(
                        rep_id=rep_id, period_start=start, period_end=end, metric="csat",
                        value=value, source="test",
                    )
                )  # fmt: skip
