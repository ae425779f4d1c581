"""Who may see what: the same rules as in Slack.

- a rep sees only their own data (scores, calls, practice, messages);
- a manager sees the teams they manage (`TeamManager`) and the reps in them, plus reps who
  report to them directly (`Person.manager_id`);
- an admin sees everything.

Every page and every API endpoint asks these functions before reading anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, or_, select

from store.models import Access, Person, Team, TeamManager


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person and what they look after."""

    id: int
    external_id: str
    name: str
    access: Access
    team_ids: frozenset[int] = frozenset()
    """Teams this person manages (managers only)."""
    report_ids: frozenset[int] = frozenset()
    """Reps whose line manager this person is (managers only)."""

    @property
    def is_admin(self) -> bool:
        return self.access == Access.admin

    @property
    def is_manager(self) -> bool:
        """A manager or an admin: someone who looks at other people's data."""
        return self.access in (Access.manager, Access.admin)

    def can_view_team(self, team_id: int) -> bool:
        if self.is_admin:
            return True
        return self.access == Access.manager and team_id in self.team_ids

    def can_view_rep(self, rep_id: int, team_id: int | None) -> bool:
        if self.is_admin or rep_id == self.id:
            return True
        if self.access != Access.manager:
            return False
        return rep_id in self.report_ids or (team_id is not None and team_id in self.team_ids)

    def can_view_person(self, person: Person) -> bool:
        assert person.id is not None
        return self.can_view_rep(person.id, person.team_id)


def load_viewer(session: Session, person: Person) -> Viewer:
    """What a person looks after, read once per request."""
    assert person.id is not None
    teams: frozenset[int] = frozenset()
    reports: frozenset[int] = frozenset()
    if person.access == Access.manager:
        teams = frozenset(
            session.exec(select(TeamManager.team_id).where(TeamManager.person_id == person.id))
        )
        reports = frozenset(
            i
            for i in session.exec(select(Person.id).where(Person.manager_id == person.id))
            if i is not None
        )
    return Viewer(
        id=person.id,
        external_id=person.external_id,
        name=person.name,
        access=person.access,
        team_ids=teams,
        report_ids=reports,
    )


def visible_teams(session: Session, viewer: Viewer) -> list[Team]:
    """The teams whose dashboard the viewer may open, by name."""
    stmt = select(Team).order_by(col(Team.name))
    if viewer.is_admin:
        return list(session.exec(stmt))
    if viewer.access != Access.manager or not viewer.team_ids:
        return []
    return list(session.exec(stmt.where(col(Team.id).in_(sorted(viewer.team_ids)))))


def visible_people_clause(viewer: Viewer) -> object:
    """A WHERE clause on `Person` for the people the viewer may see."""
    if viewer.is_admin:
        return col(Person.id).is_not(None)
    if viewer.access != Access.manager:
        return col(Person.id) == viewer.id
    return or_(
        col(Person.id) == viewer.id,
        col(Person.id).in_(sorted(viewer.report_ids)),
        col(Person.team_id).in_(sorted(viewer.team_ids)),
    )
