"""Write the demo to `<data_dir>/demo/` and load it through the ordinary import paths.

The organisation goes through `ingest.org.import_org` and the calls through
`ingest.ingest_paths`, exactly as a customer's own files would, so loading twice stores
nothing new.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.settings import IngestSettings
from ingest.demo.generator import SOURCE_PREFIX, DemoData, DemoOptions, generate_demo
from ingest.org import OrgImportReport, import_org
from ingest.pipeline import IngestReport, ingest_paths
from store.models import Access, Interaction, Person, Team, TeamManager

logger = logging.getLogger(__name__)

DEMO_DIR = "demo"
ORG_FILE = "org.yaml"
MANIFEST_FILE = "manifest.json"
CALLS_DIR = "calls"
DEMO_SOURCE = SOURCE_PREFIX
"""The `source` every demo interaction is stored under."""
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
_ORG_HEADER = (
    "# Harbor Broadband demo organisation, written by `coachloop demo`.\n"
    "# Import it with `coachloop org import` after editing; every name and id is made up.\n"
)


class DemoError(Exception):
    """The demo cannot be written or loaded; the message says what to change."""


@dataclass(frozen=True)
class DemoFiles:
    root: Path
    org: Path
    manifest: Path
    calls: list[Path]


@dataclass
class DemoReport:
    files: DemoFiles
    org: OrgImportReport
    ingest: IngestReport
    generated: int
    """Calls generated this run (stored or already there)."""


@dataclass(frozen=True)
class TeamSummary:
    slug: str
    name: str
    managers: list[str]
    reps_by_role: dict[str, int]
    pilot: int
    calls: int
    first_call: datetime | None
    last_call: datetime | None


@dataclass(frozen=True)
class OrgSummary:
    teams: list[TeamSummary]
    reps_by_role: dict[str, int]
    managers: list[tuple[str, str | None, list[str]]]
    """(name, e-mail, team slugs) per manager."""
    admins: list[tuple[str, str | None]]
    """(name, e-mail) per admin."""
    calls: int
    first_call: datetime | None
    last_call: datetime | None
    calls_by_channel: dict[str, int] = field(default_factory=dict)


def demo_dir(data_dir: Path) -> Path:
    return data_dir / DEMO_DIR


def previous_end_date(data_dir: Path) -> date | None:
    """The end date of the demo already written under `data_dir`, if there is one."""
    path = demo_dir(data_dir) / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        return date.fromisoformat(manifest["end_date"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def resolve_end_date(data_dir: Path, requested: date | None, *, today: date) -> date:
    """The requested date, else the one the existing demo ends on, else today.

    Re-using the earlier end date is what makes a second `coachloop demo` on a later day add
    nothing: the same calls are generated again and ingestion finds them all stored.
    """
    if requested is not None:
        return requested
    return previous_end_date(data_dir) or today


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary file, so an interrupted run never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_demo(data: DemoData, data_dir: Path) -> DemoFiles:
    """Write `org.yaml`, one JSONL file of calls per day and `manifest.json`."""
    root = demo_dir(data_dir)
    calls_dir = root / CALLS_DIR
    try:
        calls_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(
            f"cannot create {calls_dir} ({exc.strerror}); check COACHLOOP_DATA_DIR"
        ) from None
    org_path = root / ORG_FILE
    _write_text(
        org_path,
        _ORG_HEADER + yaml.safe_dump(data.org.as_org_file(), sort_keys=False, allow_unicode=True),
    )
    written: list[Path] = []
    for day, calls in data.calls_by_day().items():
        path = calls_dir / f"{day.isoformat()}.jsonl"
        lines = (json.dumps(call, ensure_ascii=False, separators=(",", ":")) for call in calls)
        _write_text(path, "\n".join(lines) + "\n")
        written.append(path)
    keep = {p.name for p in written}
    for stale in calls_dir.iterdir():
        # day files of an earlier demo with other options; the database keeps their calls
        if _DAY_FILE.match(stale.name) and stale.name not in keep:
            stale.unlink()
    manifest_path = root / MANIFEST_FILE
    _write_text(manifest_path, json.dumps(data.manifest(), indent=2) + "\n")
    logger.info("demo written", extra={"demo.files": len(written), "demo.dir": str(root)})
    return DemoFiles(root=root, org=org_path, manifest=manifest_path, calls=written)


def load_demo(
    engine: Engine,
    files: DemoFiles,
    *,
    settings: IngestSettings,
    data_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[OrgImportReport, IngestReport]:
    """Import the organisation, then ingest the call files; `progress(files done, total)`."""
    org_report = import_org(engine, files.org)
    if org_report.errors:
        raise DemoError(
            "the demo organisation did not import cleanly: " + "; ".join(org_report.errors[:3])
        )
    ingest_report = ingest_paths(
        engine,
        files.calls,
        settings=settings,
        data_dir=data_dir,
        source=DEMO_SOURCE,
        progress=progress,
    )
    return org_report, ingest_report


def run_demo(
    engine: Engine,
    options: DemoOptions,
    *,
    settings: IngestSettings,
    data_dir: Path,
    on_generate: Callable[[int, int], None] | None = None,
    on_ingest: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Generate the demo, write its files under `data_dir/demo/` and load them.

    Args:
        engine: A migrated database.
        options: Size, seed and end date of the demo.
        settings: Ingestion settings, as for any other import.
        data_dir: Where `demo/` (and ingestion's `rejected/`) go.
        on_generate: Called with (calls done, calls in total) while generating.
        on_ingest: Called with (files done, files in total) while ingesting.
    """
    data = generate_demo(options, on_progress=on_generate)
    files = write_demo(data, data_dir)
    org_report, ingest_report = load_demo(
        engine, files, settings=settings, data_dir=data_dir, progress=on_ingest
    )
    logger.info(
        "demo loaded",
        extra={
            "demo.calls": len(data.calls),
            "demo.new": ingest_report.new,
            "demo.duplicate": ingest_report.duplicate,
            "demo.rejected": ingest_report.rejected,
        },
    )
    return DemoReport(files, org_report, ingest_report, generated=len(data.calls))


def _utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back without a zone; they are stored as UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def summarise_org(engine: Engine) -> OrgSummary:
    """Teams, reps per role, managers and calls as the database holds them now."""
    with Session(engine) as session:
        teams = session.exec(select(Team).order_by(Team.slug)).all()
        people = session.exec(select(Person)).all()
        links = session.exec(select(TeamManager)).all()
        call_rows = session.exec(
            select(
                Interaction.team_id,
                func.count(),
                func.min(Interaction.started_at),
                func.max(Interaction.started_at),
            ).group_by(col(Interaction.team_id))
        ).all()
        channel_rows = session.exec(
            select(Interaction.channel, func.count()).group_by(col(Interaction.channel))
        ).all()
    by_id = {p.id: p for p in people}
    calls_by_team = {
        team_id: (int(count), _utc(first), _utc(last)) for team_id, count, first, last in call_rows
    }
    team_summaries: list[TeamSummary] = []
    for team in teams:
        reps = [p for p in people if p.team_id == team.id and p.access == Access.rep]
        roles: dict[str, int] = {}
        for rep in reps:
            roles[rep.role or "-"] = roles.get(rep.role or "-", 0) + 1
        count, first, last = calls_by_team.get(team.id, (0, None, None))
        team_summaries.append(
            TeamSummary(
                slug=team.slug,
                name=team.name,
                managers=[by_id[m.person_id].name for m in links if m.team_id == team.id],
                reps_by_role=dict(sorted(roles.items())),
                pilot=sum(rep.pilot for rep in reps),
                calls=count,
                first_call=first,
                last_call=last,
            )
        )
    all_roles: dict[str, int] = {}
    for person in people:
        if person.access == Access.rep:
            all_roles[person.role or "-"] = all_roles.get(person.role or "-", 0) + 1
    slug_of = {t.id: t.slug for t in teams}
    managers = [
        (p.name, p.email, sorted(slug_of[m.team_id] for m in links if m.person_id == p.id))
        for p in sorted(people, key=lambda p: p.name)
        if p.access == Access.manager
    ]
    firsts = [first for _, first, _ in calls_by_team.values() if first is not None]
    lasts = [last for _, _, last in calls_by_team.values() if last is not None]
    return OrgSummary(
        teams=team_summaries,
        reps_by_role=dict(sorted(all_roles.items())),
        managers=managers,
        admins=sorted((p.name, p.email) for p in people if p.access == Access.admin),
        calls=sum(count for count, _, _ in calls_by_team.values()),
        first_call=min(firsts, default=None),
        last_call=max(lasts, default=None),
        calls_by_channel=dict(sorted((str(c), int(n)) for c, n in channel_rows)),
    )
