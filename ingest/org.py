"""Import the organisation (teams, reps, managers, admins) from CSV or YAML, idempotently.

YAML::

    teams:
      - {slug: support-north, name: Support North, managers: [m-ana]}
    people:
      - {external_id: m-ana, name: Ana Ortiz, email: ana@harbor.example, access: manager}
      - {external_id: r-ben, name: Ben Okafor, access: rep, role: support,
         team: support-north, manager: m-ana, pilot: true}

CSV has one row per person with the columns of a `people` entry; `team_name` names a team
the first time it appears, and a manager row's `team` (or `teams`, separated by `;`) makes
them a manager of those teams.

Importing the same file twice changes nothing; a changed field is updated and reported.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from store.models import Access, Person, Team, TeamManager

logger = logging.getLogger(__name__)

_SLUG = r"^[a-z0-9][a-z0-9_\-]*$"


class OrgImportError(Exception):
    """The organisation file cannot be read at all; row-level problems are reported instead."""


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slug: str = Field(pattern=_SLUG, max_length=64)
    name: str | None = None
    managers: list[str] = []


class PersonEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    external_id: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=200)
    email: str | None = None
    slack_user_id: str | None = None
    access: Access = Access.rep
    role: str | None = None
    team: str | None = None
    teams: list[str] = []
    """Teams a manager looks after (besides `team`)."""
    team_name: str | None = None
    manager: str | None = None
    pilot: bool = False
    active: bool = True

    @model_validator(mode="before")
    @classmethod
    def _manager_team_list(cls, data: Any) -> Any:
        """A manager's `team` cell may list several teams separated by `;`."""
        if isinstance(data, dict) and isinstance(data.get("team"), str) and ";" in data["team"]:
            data = dict(data)
            extra = data.pop("team")
            data["teams"] = f"{data.get('teams') or ''};{extra}"
        return data

    @field_validator("team", "teams")
    @classmethod
    def _team_slugs(cls, value: Any) -> Any:
        for slug in value if isinstance(value, list) else [value]:
            if slug is not None and not re.match(_SLUG, slug):
                raise ValueError(f"`{slug}` is not a team slug (lower-case letters, digits, -)")
        return value

    @field_validator(
        "email", "slack_user_id", "role", "team", "manager", "team_name", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("teams", mode="before")
    @classmethod
    def _split_teams(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()]
        return value or []

    @field_validator("pilot", "active", mode="before")
    @classmethod
    def _parse_bool(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            text = value.strip().lower()
            if not text:
                return info.field_name == "active"  # blank means the default
            if text in {"0", "false", "no", "n"}:
                return False
            if text in {"1", "true", "yes", "y"}:
                return True
        return value

    @property
    def managed_teams(self) -> list[str]:
        if self.access == Access.rep:
            return []
        return sorted({*self.teams, *([self.team] if self.team else [])})


@dataclass
class OrgImportReport:
    created: dict[str, int] = field(default_factory=lambda: {"team": 0, "person": 0, "manager": 0})
    updated: dict[str, int] = field(default_factory=lambda: {"team": 0, "person": 0, "manager": 0})
    unchanged: dict[str, int] = field(default_factory=lambda: {"team": 0, "person": 0})
    changes: list[str] = field(default_factory=list)
    """One line per created or changed record, e.g. `person r-ben: team support-north -> sales`."""
    errors: list[str] = field(default_factory=list)
    """Rows set aside, each naming the line or entry and the problem."""

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "row"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _read_entries(path: Path) -> tuple[list[TeamEntry], list[tuple[str, PersonEntry]], list[str]]:
    """Parse a file into team entries, (location, person) pairs and row errors."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise OrgImportError(f"{path}: cannot read the file ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OrgImportError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    if not text.strip():
        raise OrgImportError(f"{path}: the file is empty")

    teams: list[TeamEntry] = []
    people: list[tuple[str, PersonEntry]] = []
    errors: list[str] = []
    suffix = path.suffix.lower()
    if suffix in {".yaml", ".yml"}:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OrgImportError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise OrgImportError(f"{path}: expected a mapping with `teams` and `people`")
        unknown = set(data) - {"teams", "people"}
        if unknown:
            raise OrgImportError(f"{path}: unknown top-level keys {sorted(unknown)}")
        for i, item in enumerate(data.get("teams") or []):
            try:
                teams.append(TeamEntry.model_validate(item))
            except ValidationError as exc:
                errors.append(f"{path}: teams[{i}]: {_validation_message(exc)}")
        for i, item in enumerate(data.get("people") or []):
            try:
                people.append((f"people[{i}]", PersonEntry.model_validate(item)))
            except ValidationError as exc:
                errors.append(f"{path}: people[{i}]: {_validation_message(exc)}")
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "external_id" not in reader.fieldnames:
            raise OrgImportError(
                f"{path}: the CSV needs a header row with at least external_id and name"
            )
        for row in reader:
            where = f"line {reader.line_num}"
            clean = {k.strip(): v for k, v in row.items() if k and v is not None and v != ""}
            try:
                people.append((where, PersonEntry.model_validate(clean)))
            except ValidationError as exc:
                errors.append(f"{path}: {where}: {_validation_message(exc)}")
    else:
        raise OrgImportError(f"{path}: unsupported file type `{suffix}`; use .csv, .yaml or .yml")
    return teams, people, errors


def _apply(obj: Any, values: dict[str, Any], label: str, report: OrgImportReport) -> bool:
    changed = False
    for key, value in values.items():
        old = getattr(obj, key)
        if old != value:
            report.changes.append(f"{label}: {key} {old!r} -> {value!r}")
            setattr(obj, key, value)
            changed = True
    return changed


def import_org(engine: Engine, path: Path) -> OrgImportReport:
    """Create or update teams and people from `path`; safe to run again with the same file."""
    teams, people, errors = _read_entries(path)
    report = OrgImportReport(errors=list(errors))
    with Session(engine, expire_on_commit=False) as session:
        team_by_slug = {t.slug: t for t in session.exec(select(Team)).all()}
        person_by_ext = {p.external_id: p for p in session.exec(select(Person)).all()}

        def ensure_team(slug: str, name: str | None) -> Team:
            team = team_by_slug.get(slug)
            if team is None:
                team = Team(slug=slug, name=name or slug.replace("-", " ").title())
                session.add(team)
                session.flush()
                team_by_slug[slug] = team
                report.created["team"] += 1
                report.changes.append(f"team {slug}: created")
            elif name and _apply(team, {"name": name}, f"team {slug}", report):
                report.updated["team"] += 1
            return team

        for declared in teams:
            ensure_team(declared.slug, declared.name)

        seen: set[str] = set()
        valid: list[tuple[str, PersonEntry]] = []
        for where, entry in people:
            if entry.external_id in seen:
                report.errors.append(f"{path}: {where}: `{entry.external_id}` appears twice")
                continue
            seen.add(entry.external_id)
            valid.append((where, entry))

        # First pass: people and their teams; managers are linked once everyone exists.
        created: set[str] = set()
        updated: set[str] = set()
        for _, entry in valid:
            team = ensure_team(entry.team, entry.team_name) if entry.team else None
            values: dict[str, Any] = {
                "name": entry.name,
                "email": entry.email,
                "slack_user_id": entry.slack_user_id,
                "access": entry.access,
                "role": entry.role,
                "team_id": team.id if team else None,
                "pilot": entry.pilot,
                "active": entry.active,
            }
            person = person_by_ext.get(entry.external_id)
            if person is None:
                person = Person(external_id=entry.external_id, **values)
                session.add(person)
                person_by_ext[entry.external_id] = person
                created.add(entry.external_id)
                report.created["person"] += 1
                report.changes.append(f"person {entry.external_id}: created")
            elif _apply(person, values, f"person {entry.external_id}", report):
                updated.add(entry.external_id)
        session.flush()

        links = {(m.team_id, m.person_id) for m in session.exec(select(TeamManager)).all()}

        def link_manager(team_slug: str, manager_ext: str, where: str) -> None:
            team = team_by_slug.get(team_slug) or ensure_team(team_slug, None)
            manager = person_by_ext.get(manager_ext)
            if manager is None:
                report.errors.append(f"{path}: {where}: manager `{manager_ext}` is not in the file")
                return
            assert team.id is not None and manager.id is not None
            if (team.id, manager.id) not in links:
                session.add(TeamManager(team_id=team.id, person_id=manager.id))
                links.add((team.id, manager.id))
                report.created["manager"] += 1
                report.changes.append(f"team {team_slug}: manager {manager_ext} added")

        for i, team_entry in enumerate(teams):
            for manager_ext in team_entry.managers:
                link_manager(team_entry.slug, manager_ext, f"teams[{i}]")
        for where, entry in valid:
            for slug in entry.managed_teams:
                link_manager(slug, entry.external_id, where)
            person = person_by_ext[entry.external_id]
            manager_id: int | None = None
            if entry.manager:
                manager = person_by_ext.get(entry.manager)
                if manager is None:
                    report.errors.append(
                        f"{path}: {where}: manager `{entry.manager}` of `{entry.external_id}` "
                        "is not in the organisation; add them to the file"
                    )
                    continue
                manager_id = manager.id
            if entry.external_id in created:
                person.manager_id = manager_id
            elif _apply(person, {"manager_id": manager_id}, f"person {entry.external_id}", report):
                updated.add(entry.external_id)
        report.updated["person"] = len(updated)
        report.unchanged["person"] = len(valid) - len(created) - len(updated)
        session.commit()

    for line in report.errors:
        logger.warning("org row set aside", extra={"pii.detail": line})
    logger.info(
        "org imported",
        extra={
            "org.created": report.created,
            "org.updated": report.updated,
            "org.set_aside": len(report.errors),
        },
    )
    return report


__all__ = ["OrgImportError", "OrgImportReport", "import_org"]
