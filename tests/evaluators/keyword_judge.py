"""A small deterministic judge for scoring and calibration tests, and a seeded organisation.

`KeywordJudge` follows the `Judge` protocol: a check is observed when a turn by the check's
speaker contains one of its exemplars (case-insensitive), and levels follow from checks by the
rubric's own rule. A transcript containing `[inaudible]` is left unscored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.rubric import Check, Rubric
from evaluators.base import CheckResult, CriterionVerdict, Transcript, Unscored, Verdict
from store.models import Interaction, Person, Speaker, Team, Turn

UNREADABLE = "[inaudible]"


class JudgeCrashed(RuntimeError):
    pass


@dataclass
class KeywordJudge:
    judge_name: str = "keyword@1"
    crash_on_batch: int | None = None
    """Raise on this batch (1-based), as a judge whose endpoint falls over would."""
    drop_criterion: str | None = None
    """Leave this criterion out of every verdict, as a broken judge would."""
    before_batch: Callable[[int], Awaitable[None]] | None = None
    batches: list[list[int | None]] = field(default_factory=list)
    closed: bool = False

    @property
    def name(self) -> str:
        return self.judge_name

    async def aclose(self) -> None:
        self.closed = True

    def _check(self, check: Check, transcript: Transcript) -> CheckResult:
        for turn in transcript.turns:
            if check.speaker != "any" and turn.speaker != check.speaker:
                continue
            for phrase in check.exemplars:
                if phrase.lower() in turn.text.lower():
                    return CheckResult(
                        check.id, True, turn=turn.idx, start_s=turn.start_s, quote=turn.text
                    )
        return CheckResult(check.id, False)

    async def evaluate(self, transcript: Transcript, rubric: Rubric) -> Verdict:
        if any(UNREADABLE in turn.text for turn in transcript.turns):
            raise Unscored("transcript marked inaudible")
        verdicts = []
        for criterion in rubric.criteria_for(transcript.role):
            if criterion.id == self.drop_criterion:
                continue
            results = [self._check(check, transcript) for check in criterion.checks]
            observed = {r.check_id: r.observed for r in results}
            level: int | None = criterion.level_from_checks(observed)
            if criterion.applies_when is not None:
                gate = self._check(criterion.applies_when, transcript)
                results.append(gate)
                if not gate.observed:
                    level = None
            verdicts.append(CriterionVerdict(criterion.id, level, checks=results, confidence=0.9))
        return Verdict(self.name, verdicts, prompt_tokens=10, completion_tokens=2)

    async def evaluate_many(
        self, transcripts: Sequence[Transcript], rubric: Rubric
    ) -> list[Verdict | Unscored]:
        self.batches.append([t.interaction_id for t in transcripts])
        number = len(self.batches)
        if self.before_batch is not None:
            await self.before_batch(number)
        if self.crash_on_batch == number:
            raise JudgeCrashed(f"judge fell over on batch {number}")
        out: list[Verdict | Unscored] = []
        for transcript in transcripts:
            try:
                out.append(await self.evaluate(transcript, rubric))
            except Unscored as exc:
                out.append(exc)
        return out


# Lines that meet the support rubric's checks (see config/data/rubrics/support.yaml).
GOOD_CALL = [
    ("agent", "Hello, this call is recorded for training and quality purposes."),
    ("customer", "Hi, my internet keeps dropping out every evening."),
    (
        "agent",
        "I'm sorry about that. So the connection has dropped every evening while you're "
        "trying to work. Can I take the postcode on the account?",
    ),
    ("customer", "It's HB1 2CD."),
    ("agent", "Thanks, and can you confirm your date of birth as well?"),
    ("agent", "I'm running a line test now. Your reference number is HB-40213."),
    (
        "agent",
        "I've booked an engineer visit; the engineer will arrive on Thursday between 8 and 12. "
        "Does that sort out what you called about today?",
    ),
]
# Level 2 on every criterion: one security detail, a generic apology, a check, a next step.
FAIR_CALL = [
    ("customer", "Hi, my router isn't working since yesterday."),
    ("agent", "I'm sorry about that. Can I take the postcode on the account?"),
    ("customer", "HB1 2CD."),
    ("agent", "I'm running a line test now."),
    ("agent", "An engineer will be in touch. Is there anything else?"),
]
# No concern raised (acknowledge_concern is N/A), no verification, no next step: levels 1.
POOR_CALL = [
    ("customer", "Hi, I want to check my plan."),
    ("agent", "Sure, I can see your bill here."),
    ("agent", "I'll just pop a credit on there. Okay bye then."),
]


@dataclass
class Org:
    teams: dict[str, int]
    reps: dict[str, int]
    calls: dict[str, int]


def add_call(
    session: Session,
    external_id: str,
    rep_id: int,
    team_id: int | None,
    started_at: datetime,
    lines: Sequence[tuple[str, str]],
) -> int:
    call = Interaction(
        external_id=external_id,
        source="test",
        rep_id=rep_id,
        team_id=team_id,
        started_at=started_at,
        content_hash=f"hash-{external_id}",
        turn_count=len(lines),
    )
    session.add(call)
    session.flush()
    assert call.id is not None
    for idx, (speaker, text) in enumerate(lines):
        session.add(
            Turn(
                interaction_id=call.id,
                idx=idx,
                speaker=Speaker(speaker),
                start_s=float(idx * 5),
                text=text,
            )
        )
    return call.id


def seed_org(engine: Engine, calls: Sequence[tuple[str, str, datetime, str]]) -> Org:
    """Teams north and south, reps by role, and calls given as (id, rep, start, kind).

    Reps: `ana` and `ben` (support, north), `cy` (support, south), `dee` (no role, south),
    `eve` (role `billing`, which has no rubric, south). Kinds: `good` (levels 3), `fair`
    (levels 2), `poor` (levels 1, acknowledge_concern N/A), `inaudible`, `empty`.
    """
    with Session(engine) as session:
        teams = {}
        for slug in ("north", "south"):
            team = Team(slug=slug, name=slug.title())
            session.add(team)
            session.flush()
            assert team.id is not None
            teams[slug] = team.id
        reps: dict[str, int] = {}
        rep_team: dict[str, int] = {}
        for name, role, team_slug in (
            ("ana", "support", "north"),
            ("ben", "support", "north"),
            ("cy", "support", "south"),
            ("dee", None, "south"),
            ("eve", "billing", "south"),
        ):
            person = Person(
                external_id=name, name=name.title(), role=role, team_id=teams[team_slug]
            )
            session.add(person)
            session.flush()
            assert person.id is not None
            reps[name] = person.id
            rep_team[name] = teams[team_slug]
        ids: dict[str, int] = {}
        for external_id, rep, started_at, kind in calls:
            lines = {
                "good": GOOD_CALL,
                "fair": FAIR_CALL,
                "poor": POOR_CALL,
                "inaudible": [("agent", f"Hello {UNREADABLE}")],
                "empty": [],
            }[kind]
            ids[external_id] = add_call(
                session, external_id, reps[rep], rep_team[rep], started_at, lines
            )
        session.commit()
    return Org(teams=teams, reps=reps, calls=ids)


def at(day: int, month: int = 11, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)
