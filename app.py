"""coachloop: the command line, one entry point for every process.

Each command reads settings once, sets up logging, and calls one function in the core.
Heavy imports (models, graphs) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from config.logging import setup_logging
from config.rubric import RubricError, RubricLibrary
from config.settings import Settings, get_settings

logger = logging.getLogger("coachloop")
console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="coachloop",
    help="Criteria-based coaching for customer-facing teams: score every call, find gaps, "
    "assign practice, tell reps and managers.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
rubric_app = typer.Typer(help="Write, check and inspect rubrics.", no_args_is_help=True)
org_app = typer.Typer(help="Teams, reps, managers and admins.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(rubric_app, name="rubric")
app.add_typer(org_app, name="org")
app.add_typer(db_app, name="db")


@dataclass
class Context:
    settings: Settings
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The database, migrated to the newest schema on first use."""
        if self._engine is None:
            from store.db import DatabaseError, make_engine, migrate

            engine = make_engine(self.settings.resolved_database_url)
            try:
                migrate(engine)
            except DatabaseError as exc:
                fail(str(exc))
            self._engine = engine
        return self._engine

    def rubrics(self) -> RubricLibrary:
        try:
            return RubricLibrary.from_dir(self.settings.rubric_dir)
        except RubricError as exc:
            fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def ctx_of(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    assert isinstance(obj, Context)
    return obj


@app.callback()
def main_callback(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQLAlchemy URL; default: SQLite under data/."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    settings = get_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    level = "DEBUG" if verbose else settings.log_level
    setup_logging(level, json_lines=settings.log_json, redact_pii=settings.redact_pii_logs)
    ctx.obj = Context(settings=settings)


# -- database -------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the schema to the newest version."""
    engine = ctx_of(ctx).engine
    console.print(f"schema up to date at {engine.url.render_as_string(hide_password=True)}")


# -- rubrics --------------------------------------------------------------------------------


@rubric_app.command("lint")
def rubric_lint(
    files: Annotated[list[Path], typer.Argument(help="Rubric YAML files.", exists=False)],
) -> None:
    """Check rubrics for traits, levels without checks, unverifiable checks, overlaps, weights."""
    from rich.table import Table

    from config.rubric import load_rubric
    from config.rubric_lint import Severity, has_errors, lint_rubric

    failed = False
    for path in files:
        try:
            rubric = load_rubric(path)
        except RubricError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            failed = True
            continue
        findings = lint_rubric(rubric)
        if not findings:
            console.print(f"[green]ok[/green] {path} ({rubric.role}, version {rubric.version})")
            continue
        table = Table(title=f"{path} ({rubric.role}, version {rubric.version})", show_lines=True)
        table.add_column("severity")
        table.add_column("where")
        table.add_column("problem")
        table.add_column("suggestion")
        for f in findings:
            colour = "red" if f.severity is Severity.error else "yellow"
            table.add_row(f"[{colour}]{f.severity}[/{colour}]", f.where, f.problem, f.suggestion)
        console.print(table)
        failed = failed or has_errors(findings)
    if failed:
        raise typer.Exit(1)


@rubric_app.command("show")
def rubric_show(ctx: typer.Context, role: Annotated[str | None, typer.Argument()] = None) -> None:
    """List the rubrics in use, or one role's criteria, weights and checks."""
    from rich.table import Table

    library = ctx_of(ctx).rubrics()
    if role is None:
        table = Table(title="Rubrics")
        for column in ("role", "name", "criteria", "version"):
            table.add_column(column)
        for r in library.rubrics:
            table.add_row(", ".join(r.served_roles), r.name, str(len(r.criteria)), r.version)
        console.print(table)
        return
    try:
        rubric = library.for_role(role)
    except RubricError as exc:
        fail(str(exc))
    table = Table(title=f"{rubric.name} (version {rubric.version})", show_lines=True)
    for column in ("criterion", "weight", "behaviour", "checks (level 2 / level 3)"):
        table.add_column(column)
    weights = rubric.weights()
    for c in rubric.criteria:
        checks = " / ".join(
            ", ".join(check.id for check in c.levels[lvl].checks) or "-" for lvl in (2, 3)
        )
        flag = " [red](compliance)[/red]" if c.compliance else ""
        table.add_row(f"{c.id}{flag}", f"{weights[c.id]:.0%}", c.behaviour, checks)
    console.print(table)


# -- organisation ---------------------------------------------------------------------------


@org_app.command("import")
def org_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Organisation file (.csv, .yaml).")],
) -> None:
    """Create or update teams, reps, managers and admins; safe to run again."""
    from ingest.org import OrgImportError, import_org

    try:
        report = import_org(ctx_of(ctx).engine, file)
    except OrgImportError as exc:
        fail(str(exc))
    for line in report.changes:
        console.print(f"  {line}", highlight=False)
    created = ", ".join(f"{v} {k}" for k, v in report.created.items() if v) or "nothing"
    updated = ", ".join(f"{v} {k}" for k, v in report.updated.items() if v) or "nothing"
    console.print(
        f"created {created}; updated {updated}; "
        f"{report.unchanged['person']} people unchanged; {len(report.errors)} rows set aside"
    )
    for line in report.errors:
        err_console.print(f"[yellow]set aside:[/yellow] {line}", highlight=False)
    if report.errors and not report.changed and not report.unchanged["person"]:
        raise typer.Exit(1)


@org_app.command("show")
def org_show(ctx: typer.Context) -> None:
    """Teams with their managers, reps per role and pilot reps."""
    from rich.table import Table
    from sqlmodel import Session, select

    from store.models import Access, Person, Team, TeamManager

    with Session(ctx_of(ctx).engine) as session:
        teams = session.exec(select(Team).order_by(Team.slug)).all()
        people = session.exec(select(Person)).all()
        links = session.exec(select(TeamManager)).all()
    by_id = {p.id: p for p in people}
    table = Table(title="Organisation")
    for column in ("team", "managers", "reps", "roles", "pilot"):
        table.add_column(column)
    for team in teams:
        reps = [p for p in people if p.team_id == team.id and p.access == Access.rep]
        managers = [by_id[link.person_id].name for link in links if link.team_id == team.id]
        roles: dict[str, int] = {}
        for rep in reps:
            roles[rep.role or "-"] = roles.get(rep.role or "-", 0) + 1
        table.add_row(
            f"{team.name} ({team.slug})",
            ", ".join(managers) or "-",
            str(len(reps)),
            ", ".join(f"{k} {v}" for k, v in sorted(roles.items())) or "-",
            str(sum(rep.pilot for rep in reps)),
        )
    console.print(table)
    admins = [p.name for p in people if p.access == Access.admin]
    console.print(f"{len(people)} people; admins: {', '.join(admins) or 'none'}", highlight=False)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
