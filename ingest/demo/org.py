"""The demo organisation: teams, people, and each rep's skill on each rubric criterion.

Skill is a level between 1 and 3 per criterion that drifts week to week. A few reps are given
a shape on purpose, so the coaching rules have something to find:

- `gap`: averages well below 1.8 on one criterion all month;
- `cohort`: the same gap shared by half of one support team;
- `decline`: fine until the last week, then 3, 2, 1 over consecutive sessions;
- `improver`: starts near 1 on one criterion and ends near 3;
- `strong`: near 3 on everything.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ingest.demo._text import load_template, node, strings

PatternKind = Literal["gap", "cohort", "decline", "improver", "strong"]

TEAM_LEAD_ROLE = "team-lead"
GAP_LEVEL = 1.35
STRONG_LEVEL = 2.85
IMPROVER_FROM, IMPROVER_TO = 1.2, 2.9
DECLINE_FROM = 2.6
DECLINE_SCRIPT = (3, 3, 2, 1, 1)
"""Levels of a declining criterion over the rep's last sessions of the final week."""

# Which criterion each shaped rep carries, by team role and position among the team's reps.
# Positions that do not exist in a smaller organisation are skipped.
_SHAPES: dict[str, list[tuple[PatternKind, str]]] = {
    "support-north": [
        ("strong", ""),
        ("gap", "verify_identity"),
        ("improver", "acknowledge_concern"),
        ("decline", "follow_process"),
    ],
    "support-south": [("strong", "")],
    "sales": [
        ("strong", ""),
        ("gap", "state_terms"),
        ("decline", "discover_needs"),
        ("improver", "handle_objection"),
    ],
}
_TEAM_LEAD_SHAPES: dict[str, list[tuple[PatternKind, str]]] = {
    "support-north": [("gap", "asks_view_first")],
    "support-south": [("improver", "cites_moment"), ("improver", "names_behaviour")],
    "sales": [("decline", "agrees_next_step")],
}
COHORT_TEAM = "support-south"
COHORT_CRITERION = "confirm_resolution"
COHORT_SHARE = 0.5
PILOT_TEAM = "support-north"


@dataclass(frozen=True)
class DemoTeam:
    slug: str
    name: str
    role: str
    """The job role of the team's reps (besides its team lead)."""
    managers: tuple[str, ...]


@dataclass(frozen=True)
class DemoPerson:
    external_id: str
    name: str
    email: str
    slack_user_id: str
    access: Literal["rep", "manager", "admin"]
    role: str | None = None
    team: str | None = None
    manager: str | None = None
    pilot: bool = False

    @property
    def first_name(self) -> str:
        return self.name.split()[0]

    def as_entry(self) -> dict[str, Any]:
        """This person as a `people` entry of the organisation file."""
        entry: dict[str, Any] = {
            "external_id": self.external_id,
            "name": self.name,
            "email": self.email,
            "slack_user_id": self.slack_user_id,
            "access": self.access,
        }
        if self.access == "rep":
            entry.update(role=self.role, team=self.team, manager=self.manager, pilot=self.pilot)
        return entry


@dataclass(frozen=True)
class Pattern:
    """A shape given on purpose to one rep's criterion."""

    rep: str
    team: str
    role: str
    criterion: str | None
    """None for `strong`, which covers every criterion."""
    kind: PatternKind


@dataclass
class SkillProfile:
    """A rep's intended level per criterion over the weeks of the demo."""

    rep: str
    role: str
    base: dict[str, float]
    weekly: dict[str, list[float]]
    """Offset per week of the window, oldest first."""
    improving: set[str] = field(default_factory=set)
    declining: set[str] = field(default_factory=set)

    def mean_level(self, criterion: str, *, week: int, progress: float) -> float:
        """The rep's underlying level; `progress` runs from 0 (first day) to 1 (last day)."""
        if criterion in self.improving:
            return IMPROVER_FROM + (IMPROVER_TO - IMPROVER_FROM) * progress
        return min(2.95, max(1.05, self.base[criterion] + self.weekly[criterion][week]))


@dataclass(frozen=True)
class DemoOrg:
    company: str
    teams: list[DemoTeam]
    people: list[DemoPerson]
    patterns: list[Pattern]
    profiles: dict[str, SkillProfile]

    @property
    def reps(self) -> list[DemoPerson]:
        return [p for p in self.people if p.access == "rep"]

    def team_members(self, slug: str) -> list[DemoPerson]:
        return [p for p in self.reps if p.team == slug]

    def as_org_file(self) -> dict[str, Any]:
        """The organisation in the import format (`teams` and `people`)."""
        return {
            "teams": [
                {"slug": t.slug, "name": t.name, "managers": list(t.managers)} for t in self.teams
            ],
            "people": [p.as_entry() for p in self.people],
        }


def slack_id(external_id: str) -> str:
    """A stable, made-up Slack user id in Slack's shape (U0 and nine capitals or digits)."""
    digest = hashlib.sha256(external_id.encode()).digest()
    return "U0" + base64.b32encode(digest).decode()[:9]


def _slug_name(name: str) -> str:
    return "-".join(part.lower().replace("'", "") for part in name.split())


def _email(name: str, domain: str) -> str:
    return ".".join(part.lower().replace("'", "") for part in name.split()) + f"@{domain}"


def _split(total: int, shares: Sequence[int]) -> list[int]:
    """Split `total` by `shares` (largest remainder), at least one each."""
    raw = [total * s / sum(shares) for s in shares]
    counts = [max(1, math.floor(r)) for r in raw]
    order = sorted(range(len(shares)), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
    i = 0
    while sum(counts) < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while sum(counts) > total:
        biggest = max(range(len(counts)), key=lambda j: counts[j])
        counts[biggest] -= 1
    return counts


def _staff_names(count: int, rng: random.Random) -> list[str]:
    people = load_template("people")
    firsts = strings(people, "staff_first_names", where="people")
    lasts = strings(people, "staff_last_names", where="people")
    rng.shuffle(firsts)
    rng.shuffle(lasts)
    if count > len(firsts) * len(lasts):
        raise ValueError(f"the demo has names for at most {len(firsts) * len(lasts)} reps")
    return [
        f"{firsts[i % len(firsts)]} {lasts[(i + i // len(firsts)) % len(lasts)]}"
        for i in range(count)
    ]


def _profile(
    rep: str,
    role: str,
    criteria: Sequence[str],
    weeks: int,
    rng: random.Random,
    shapes: Sequence[tuple[PatternKind, str]],
) -> SkillProfile:
    kinds = {kind for kind, _ in shapes}
    base: dict[str, float] = {}
    weekly: dict[str, list[float]] = {}
    for criterion in criteria:
        if "strong" in kinds:
            base[criterion] = STRONG_LEVEL
            weekly[criterion] = [rng.gauss(0, 0.04) for _ in range(weeks)]
            continue
        base[criterion] = rng.uniform(1.95, 2.65)
        walk, offsets = 0.0, []
        for _ in range(weeks):
            walk = max(-0.35, min(0.35, walk + rng.gauss(0, 0.12)))
            offsets.append(walk)
        weekly[criterion] = offsets
    profile = SkillProfile(rep=rep, role=role, base=base, weekly=weekly)
    for kind, criterion in shapes:
        if kind in {"gap", "cohort"}:
            profile.base[criterion] = GAP_LEVEL
            profile.weekly[criterion] = [rng.gauss(0, 0.04) for _ in range(weeks)]
        elif kind == "improver":
            profile.improving.add(criterion)
        elif kind == "decline":
            profile.base[criterion] = DECLINE_FROM
            profile.weekly[criterion] = [rng.gauss(0, 0.05) for _ in range(weeks)]
            profile.declining.add(criterion)
    return profile


def build_org(
    n_reps: int,
    *,
    criteria_by_role: Mapping[str, Sequence[str]],
    weeks: int,
    rng: random.Random,
) -> DemoOrg:
    """Teams, people and skill profiles for `n_reps` reps (one team lead per team)."""
    people_data = load_template("people")
    domain = str(node(people_data, "email_domain", where="people"))
    team_rows = node(people_data, "teams", where="people")
    if n_reps < 3 * len(team_rows):
        raise ValueError(f"the demo needs at least {3 * len(team_rows)} reps (three per team)")

    managers: list[DemoPerson] = []
    managers_of: dict[str, list[str]] = {row["slug"]: [] for row in team_rows}
    for row in node(people_data, "managers", where="people"):
        ext = f"m-{_slug_name(row['name'])}"
        managers.append(
            DemoPerson(ext, row["name"], _email(row["name"], domain), slack_id(ext), "manager")
        )
        for slug in row["teams"]:
            managers_of[slug].append(ext)
    admins = [
        DemoPerson(
            f"admin-{_slug_name(row['name'])}",
            row["name"],
            _email(row["name"], domain),
            slack_id(f"admin-{_slug_name(row['name'])}"),
            "admin",
        )
        for row in node(people_data, "admins", where="people")
    ]
    teams = [
        DemoTeam(row["slug"], row["name"], row["role"], tuple(managers_of[row["slug"]]))
        for row in team_rows
    ]
    # Each team's own manager is the last one listed for it (a head of support covers several).
    line_manager = {t.slug: t.managers[-1] for t in teams}

    counts = _split(n_reps - len(teams), [int(row["share"]) for row in team_rows])
    names = iter(_staff_names(n_reps, rng))
    reps: list[DemoPerson] = []
    patterns: list[Pattern] = []
    profiles: dict[str, SkillProfile] = {}
    for team, count in zip(teams, counts, strict=True):
        members = [(TEAM_LEAD_ROLE, next(names))] + [(team.role, next(names)) for _ in range(count)]
        plan: list[tuple[PatternKind, str]] = list(_SHAPES.get(team.slug, []))
        if team.slug == COHORT_TEAM:
            # at least half of the whole team, team lead included
            cohort: tuple[PatternKind, str] = ("cohort", COHORT_CRITERION)
            plan = [cohort] * math.ceil(COHORT_SHARE * (count + 1)) + plan
        position = 0
        for role, name in members:
            ext = f"r-{_slug_name(name)}"
            reps.append(
                DemoPerson(
                    ext,
                    name,
                    _email(name, domain),
                    slack_id(ext),
                    "rep",
                    role=role,
                    team=team.slug,
                    manager=line_manager[team.slug],
                    pilot=team.slug == PILOT_TEAM,
                )
            )
            shapes: list[tuple[PatternKind, str]] = []
            if role == TEAM_LEAD_ROLE:
                shapes.extend(_TEAM_LEAD_SHAPES.get(team.slug, []))
            else:
                if position < len(plan):
                    shapes.append(plan[position])
                position += 1
            criteria = list(criteria_by_role[role])
            for kind, criterion in shapes:
                if kind != "strong" and criterion not in criteria:
                    raise ValueError(f"the {role} rubric has no criterion `{criterion}`")
                patterns.append(Pattern(ext, team.slug, role, criterion or None, kind))
            profiles[ext] = _profile(ext, role, criteria, weeks, rng, shapes)

    company = str(node(people_data, "company", where="people"))
    return DemoOrg(company, teams, managers + admins + reps, patterns, profiles)
