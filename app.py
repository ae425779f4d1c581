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


# -- ingestion ------------------------------------------------------------------------------


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Transcript files and folders.")],
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="Mapping YAML for another platform's JSON or CSV."),
    ] = None,
    rep: Annotated[
        str | None, typer.Option("--rep", help="Rep (external id or e-mail) for every call.")
    ] = None,
    team: Annotated[str | None, typer.Option("--team", help="Team slug for every call.")] = None,
    source: Annotated[
        str | None, typer.Option("--source", help="Source name instead of the format's.")
    ] = None,
) -> None:
    """Store calls from JSON, JSONL, WebVTT, SRT, CSV, text or mapped exports; safe to re-run."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    from rich.table import Table

    from ingest import MappingError, ingest_paths, load_mapping

    c = ctx_of(ctx)
    mapping_file = mapping or c.settings.ingest.mapping_file
    try:
        loaded = load_mapping(mapping_file) if mapping_file else None
    except MappingError as exc:
        fail(str(exc))
    engine = c.engine
    columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress("[progress.description]{task.description}", *columns, console=err_console) as bar:
        task = bar.add_task("ingesting files", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = ingest_paths(
            engine,
            paths,
            settings=c.settings.ingest,
            data_dir=c.settings.data_dir,
            mapping=loaded,
            progress=on_progress,
            rep=rep,
            team=team,
            source=source,
        )

    summary = Table(title=f"Files read: {report.files}")
    for column in ("new", "duplicate", "rejected"):
        summary.add_column(column, justify="right")
    summary.add_row(str(report.new), str(report.duplicate), str(report.rejected))
    console.print(summary)
    if report.rejections:
        shown = report.rejections[:50]
        rejected = Table(title="Set aside (copies and reasons under data_dir/rejected/)")
        for column in ("file", "reason"):
            rejected.add_column(column, overflow="fold")
        for r in shown:
            rejected.add_row(str(r.path), r.reason)
        console.print(rejected)
        if len(report.rejections) > len(shown):
            console.print(f"... and {len(report.rejections) - len(shown)} more", highlight=False)
    if report.files == 0 and not report.rejections:
        fail("No transcript files found in the given paths")
    if report.all_failed:
        raise typer.Exit(1)


# -- scoring --------------------------------------------------------------------------------


@app.command("score")
def score(
    ctx: typer.Context,
    judge: Annotated[str, typer.Option("--judge", help="`offline` or `llm`.")] = "offline",
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Calls per judge call and commit.")
    ] = 16,
    retry_unscored: Annotated[
        bool, typer.Option("--retry-unscored", help="Also retry calls left unscored before.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N calls.")] = None,
) -> None:
    """Score every call not yet scored under its rubric version by this judge; safe to rerun."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from evaluators.base import EvaluatorError
    from evaluators.judges import make_judge
    from evaluators.scoring import score_pending

    context = ctx_of(ctx)
    rubrics = context.rubrics()
    try:
        scorer = make_judge(judge, context.settings, context.settings.data_dir / "models")
    except EvaluatorError as exc:
        fail(str(exc))
    engine = context.engine
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console) as bar:
        task = bar.add_task(f"scoring with {scorer.name}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = asyncio.run(
                score_pending(
                    engine,
                    scorer,
                    rubrics,
                    batch_size=batch_size,
                    progress=on_progress,
                    limit=limit,
                    retry_unscored=retry_unscored,
                )
            )
        except Exception as exc:
            logger.exception("scoring stopped", extra={"judge": scorer.name})
            fail(
                f"Scoring stopped ({type(exc).__name__}); finished batches are saved, so run "
                "the same command again to resume"
            )
    console.print(
        f"{report.judge}: scored {report.scored}, unscored {report.unscored}, "
        f"skipped {report.skipped} (scored by another run), retried {report.retried}; "
        f"tokens {report.prompt_tokens} in, {report.completion_tokens} out",
        highlight=False,
    )
    if report.reasons:
        table = Table(title="Unscored calls by reason")
        table.add_column("reason")
        table.add_column("calls", justify="right")
        for reason, count in report.reasons.most_common():
            table.add_row(reason, str(count))
        console.print(table)


@app.command("coverage")
def coverage_command(
    ctx: typer.Context,
    team: Annotated[str | None, typer.Option("--team", help="Team slug.")] = None,
    period: Annotated[str, typer.Option("--period", help="`week` or `month`.")] = "week",
    judge: Annotated[
        str | None, typer.Option("--judge", help="Judge name or prefix; default any.")
    ] = None,
) -> None:
    """How many calls are scored, unscored (and why), flagged and N/A, by team and period."""
    from rich.table import Table

    from evaluators.scoring import coverage, resolve_judge

    if period not in ("week", "month"):
        fail(f"Period `{period}` is not `week` or `month`")
    context = ctx_of(ctx)
    rubrics = context.rubrics()
    engine = context.engine
    try:
        judge_name = resolve_judge(engine, judge) if judge else None
        report = coverage(
            engine,
            team=team,
            judge=judge_name,
            period="week" if period == "week" else "month",
            rubrics=rubrics,
        )
    except ValueError as exc:
        fail(str(exc))

    table = Table(title=f"Coverage by team and {period}" + (f" ({judge_name})" if judge else ""))
    for column in ("team", period, "calls", "scored", "share", "unscored", "pending", "flagged"):
        table.add_column(column, justify="left" if column in ("team", period) else "right")
    table.add_column("N/A by criterion")
    for row in [*report.rows, report.total]:
        share = f"{row.scored_share:.0%}" if row.scored_share is not None else "-"
        na = ", ".join(f"{k} {v}" for k, v in sorted(row.not_applicable.items())) or "-"
        table.add_row(
            row.team,
            str(row.period_start) if row.period_start else "",
            str(row.interactions),
            str(row.scored),
            share,
            str(row.unscored),
            str(row.pending),
            str(row.flagged),
            na,
        )
    console.print(table)
    if report.total.unscored_reasons:
        reasons = Table(title="Unscored calls by reason")
        reasons.add_column("reason")
        reasons.add_column("calls", justify="right")
        for reason, count in report.total.unscored_reasons.most_common():
            reasons.add_row(reason, str(count))
        console.print(reasons)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
