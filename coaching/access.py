"""Who someone is and what they may see: the rules every surface (Slack, web) applies.

- A team's figures are for the team's managers (`TeamManager`) and for admins.
- A cohort decision is answered by a manager of its team or an admin.
- A dispute is resolved by one of the rep's managers or an admin.
- Reps see their own feedback, progress and assignments only.

Each refusal says why, in words the person can read.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from coaching.errors import CoachingError
from coaching.steps import managers_for_rep
from store.db import session_scope
from store.models import Access, CohortDecision, Dispute, Person, Team, TeamManager


class AccessDenied(CoachingError):
    """The person may not see or do this; the message says why.

    `rule` names the rule that refused (`reps_see_own`, `no_teams`, `not_their_team`,
    `no_such_team`, `not_team_manager`, `not_reps_manager`, `gone`), so a surface can word
    the refusal itself; `team` and `teams` are the team asked for and the viewer's own.
    """

    def __init__(
        self, rule: str, message: str, *, team: str | None = None, teams: Iterable[str] = ()
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.team = team
        self.teams = sorted(teams)


class TeamChoiceNeeded(CoachingError):
    """The person looks after several teams (or is an admin) and named none."""

    def __init__(self, teams: Iterable[str]) -> None:
        self.teams = sorted(teams)
        names = ", ".join(self.teams) or "none yet"
        super().__init__(f"Name a team; yours: {names}")


def person_for_slack(engine: Engine, slack_user_id: str) -> Person | None:
    """The active person with this Slack user id, if any."""
    with Session(engine) as session:
        return session.exec(
            select(Person).where(Person.slack_user_id == slack_user_id, col(Person.active))
        ).first()


def link_slack_user(engine: Engine, slack_user_id: str, email: str) -> Person | None:
    """Record the Slack id on the active person with this e-mail who has none yet."""
    if not email.strip():
        return None
    with session_scope(engine) as session:
        person = session.exec(
            select(Person).where(
                func.lower(col(Person.email)) == email.strip().lower(),
                col(Person.active),
                col(Person.slack_user_id).is_(None),
            )
        ).first()
        if person is None:
            return None
        person.slack_user_id = slack_user_id
        session.add(person)
        return person


def slack_user_ids(engine: Engine, person_ids: Iterable[int]) -> dict[int, str | None]:
    """Each person's Slack user id (None when it is not known)."""
    ids = sorted(set(person_ids))
    if not ids:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(Person.id, Person.slack_user_id).where(col(Person.id).in_(ids))
        ).all()
    return {int(pid): slack for pid, slack in rows if pid is not None}


def managed_teams(engine: Engine, person: Person) -> list[Team]:
    """The teams a person looks after: every team for an admin, their own for a manager."""
    with Session(engine) as session:
        stmt = select(Team).order_by(col(Team.slug))
        if person.access != Access.admin:
            stmt = stmt.join(TeamManager, col(TeamManager.team_id) == col(Team.id)).where(
                TeamManager.person_id == person.id
            )
        return list(session.exec(stmt).all())


def viewable_team(engine: Engine, viewer: Person, team: str | None) -> Team:
    """The team `viewer` asked for, if they may see it.

    Raises:
        AccessDenied: A rep, or a manager asking for a team they do not manage.
        TeamChoiceNeeded: No team named, and the viewer looks after more than one.
    """
    if viewer.access == Access.rep:
        raise AccessDenied(
            "reps_see_own",
            "Team figures are for the team's managers and for admins; your own progress "
            "is on your coachloop Home tab",
        )
    teams = managed_teams(engine, viewer)
    if team is None:
        if len(teams) == 1:
            return teams[0]
        if not teams:
            raise AccessDenied(
                "no_teams",
                "You don't look after any team in coachloop yet; an admin can add you as a "
                "team's manager",
            )
        raise TeamChoiceNeeded(t.slug for t in teams)
    found = next((t for t in teams if t.slug == team.strip().lower()), None)
    if found is not None:
        return found
    slugs = [t.slug for t in teams]
    names = ", ".join(slugs) or "none"
    if viewer.access == Access.admin:
        raise AccessDenied(
            "no_such_team", f"There is no team `{team}`; teams: {names}", team=team, teams=slugs
        )
    raise AccessDenied(
        "not_their_team",
        f"Only the managers of `{team}` and admins can see its figures; yours: {names}",
        team=team,
        teams=slugs,
    )


def check_cohort_decider(engine: Engine, person: Person, decision_id: int) -> CohortDecision:
    """The cohort decision, if `person` may approve or decline it."""
    with Session(engine) as session:
        decision = session.get(CohortDecision, decision_id)
        if decision is None:
            raise AccessDenied("gone", f"There is no cohort decision {decision_id} any more")
        if person.access == Access.admin:
            return decision
        manages = session.exec(
            select(TeamManager).where(
                TeamManager.team_id == decision.team_id, TeamManager.person_id == person.id
            )
        ).first()
    if manages is None:
        raise AccessDenied(
            "not_team_manager", "Only the team's managers and admins can answer a team response"
        )
    return decision


def check_dispute_resolver(engine: Engine, person: Person, dispute_id: int) -> Dispute:
    """The dispute, if `person` may resolve it (one of the rep's managers, or an admin)."""
    with Session(engine) as session:
        dispute = session.get(Dispute, dispute_id)
        if dispute is None:
            raise AccessDenied("gone", f"There is no dispute {dispute_id} any more")
        if person.access == Access.admin:
            return dispute
        rep = session.get(Person, dispute.rep_id)
        managers = managers_for_rep(session, rep)
    if person.id not in managers:
        raise AccessDenied(
            "not_reps_manager", "Only the rep's managers and admins can resolve a dispute"
        )
    return dispute
