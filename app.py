"""coachloop: the command line, one entry point for every process.

Each command reads settings once, sets up logging, and calls one function in the core.
Heavy imports (models, graphs) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
calibrate_app = typer.Typer(
    help="Calibrate a rubric: human agreement, the judge against it, the go-live gate, drift.",
    no_args_is_help=True,
)
app.add_typer(calibrate_app, name="calibrate")


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
    from evaluators.scoring import ScoringReport, score_pending

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

        async def run() -> ScoringReport:
            try:
                return await score_pending(
                    engine,
                    scorer,
                    rubrics,
                    batch_size=batch_size,
                    progress=on_progress,
                    limit=limit,
                    retry_unscored=retry_unscored,
                )
            finally:
                close = getattr(scorer, "aclose", None)
                if close is not None:
                    await close()

        try:
            report = asyncio.run(run())
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


# -- calibration ----------------------------------------------------------------------------


def _figure(estimate: Any, *, interval: bool = True) -> str:
    if estimate.value is None:
        return "-"
    if not interval or estimate.low is None or estimate.high is None:
        return f"{estimate.value:.2f}"
    return f"{estimate.value:.2f}\n{estimate.low:.2f}–{estimate.high:.2f}"


@calibrate_app.command("import")
def calibrate_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with rater, interaction, criterion, level.")],
    set_name: Annotated[
        str | None,
        typer.Option("--set", help="Calibration round or sample name; default `calibration`."),
    ] = None,
) -> None:
    """Load people's levels for calibration; bad rows are listed by line and skipped."""
    from evaluators.calibration import CalibrationError, import_ratings

    context = ctx_of(ctx)
    rubrics = context.rubrics()
    name = set_name or context.settings.calibration.calibration_set
    try:
        report = import_ratings(context.engine, file, rubrics, set_name=name)
    except CalibrationError as exc:
        fail(str(exc))
    console.print(
        f"{report.accepted} ratings stored ({report.inserted} new, {report.updated} changed, "
        f"{report.unchanged} unchanged) in set `{report.set_name}`; "
        f"{len(report.bad)} rows set aside",
        highlight=False,
    )
    for bad in report.bad:
        err_console.print(f"[yellow]set aside:[/yellow] {bad}", highlight=False)
    if report.bad and not report.accepted:
        raise typer.Exit(1)


@calibrate_app.command("report")
def calibrate_report(
    ctx: typer.Context,
    rubric: Annotated[str | None, typer.Option("--rubric", help="Role of the rubric.")] = None,
    judge: Annotated[
        str | None, typer.Option("--judge", help="Judge name or prefix; default the busiest.")
    ] = None,
    set_name: Annotated[
        str | None, typer.Option("--set", help="Calibration set; default `calibration`.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report only; do not record the gate.")
    ] = False,
) -> None:
    """Agreement per criterion, the go-live gate, divergent calls, rewrites and drift."""
    from rich import box
    from rich.table import Table

    from evaluators.calibration import CalibrationError, calibration_report

    context = ctx_of(ctx)
    settings = context.settings.calibration
    try:
        report = calibration_report(
            context.engine,
            context.rubrics(),
            settings,
            role=rubric,
            judge=judge,
            set_name=set_name,
            record=not dry_run,
        )
    except CalibrationError as exc:
        fail(str(exc))
    if not report.rubrics:
        fail("No human ratings yet; import some with `coachloop calibrate import FILE.csv`")

    gate = (
        f"gate: exact >= {settings.min_exact:.0%} and weighted kappa >= "
        f"{settings.min_kappa:.2f}, for people and for the judge against their consensus"
    )
    for result in report.rubrics:
        console.print(
            f"\n[bold]{result.rubric.name}[/bold] (role {result.rubric.role}, version "
            f"{result.rubric.version}); set `{result.set_name}`; judge {result.judge or 'none'}",
            highlight=False,
        )
        if result.judge_note:
            console.print(f"  {result.judge_note}", highlight=False)
        console.print(f"  {gate}", highlight=False)
        table = Table(
            title="Agreement per criterion: people, then the judge against their consensus "
            f"(value, {settings.confidence:.0%} interval below)",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
        )
        table.add_column("criterion", overflow="fold", min_width=12)
        for column in ("n", "exact", "±1", "kappa", "alpha", "status"):
            table.add_column(column, no_wrap=True)
        for item in result.criteria:
            people, judged = item.humans, item.judge
            table.add_row(
                f"{item.criterion.id} ({len(item.raters)} people)",
                str(people.n),
                _figure(people.exact),
                _figure(people.within_one, interval=False),
                _figure(people.kappa),
                _figure(people.alpha),
                "[green]live[/green]" if item.live else "[red]not live[/red]",
            )
            table.add_row(
                "  judge",
                str(judged.n) if judged else "-",
                _figure(judged.exact) if judged else "-",
                _figure(judged.within_one, interval=False) if judged else "-",
                _figure(judged.kappa) if judged else "-",
                "",
                "",
                end_section=True,
            )
        console.print(table)
        for item in result.criteria:
            for failure in item.failures:
                console.print(f"  [red]x[/red] {item.criterion.id}: {failure}", highlight=False)
            if item.judge_missing and result.judge:
                console.print(
                    f"  {item.criterion.id}: the judge has not scored {len(item.judge_missing)} "
                    f"of {item.calls} rated calls ({', '.join(item.judge_missing[:5])}...)",
                    highlight=False,
                )
            if item.ties:
                console.print(
                    f"  {item.criterion.id}: {item.ties} calls tied between two levels; "
                    "the consensus takes the lower one",
                    highlight=False,
                )
            if item.rewrite:
                console.print(f"  [yellow]rewrite[/yellow] {item.rewrite}", highlight=False)
        shown = 10
        divergent = [
            (item.criterion.id, d) for item in result.criteria for d in item.divergent[:shown]
        ]
        if divergent:
            calls = Table(title="Calls where raters diverge (widest first)")
            for column in ("criterion", "call", "levels", "consensus", "judge", "apart"):
                calls.add_column(column)
            for criterion_id, d in divergent:
                levels = ", ".join(
                    f"{rater} {'N/A' if lvl is None else lvl}" for rater, lvl in d.levels.items()
                )
                calls.add_row(
                    criterion_id,
                    d.external_id,
                    levels,
                    "N/A" if d.consensus is None else str(d.consensus),
                    "N/A" if d.judge is None else str(d.judge),
                    "N/A vs level" if d.applicability and not d.spread else str(d.spread),
                )
            console.print(calls)
            for item in result.criteria:
                if len(item.divergent) > shown:
                    console.print(
                        f"  {item.criterion.id}: {len(item.divergent) - shown} more divergent "
                        "calls not shown",
                        highlight=False,
                    )
        if result.drift:
            drift = Table(title="Drift: the judge against post-go-live samples")
            for column in ("set", "criterion", "calls", "exact", "kappa", "status", "why"):
                drift.add_column(column)
            for check in result.drift:
                colour = {"drifting": "red", "holding": "green"}.get(check.status, "white")
                drift.add_row(
                    check.set_name,
                    check.criterion_id,
                    str(check.calls),
                    _figure(check.judge.exact) if check.judge else "-",
                    _figure(check.judge.kappa) if check.judge else "-",
                    f"[{colour}]{check.status}[/{colour}]",
                    "; ".join(check.reasons),
                )
            console.print(drift)
        live = [item.criterion.id for item in result.criteria if item.live]
        state = "recorded" if result.recorded else "not recorded"
        console.print(
            f"  live criteria: {', '.join(live) or 'none'}; rubric version live: "
            f"{'yes' if result.live else 'no'} ({state})",
            highlight=False,
        )


@calibrate_app.command("sample")
def calibrate_sample(
    ctx: typer.Context,
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="Calls to draw; default from settings.")
    ] = None,
    judge: Annotated[str | None, typer.Option("--judge", help="Judge name or prefix.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="CSV to write.")] = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", formats=["%Y-%m-%d"], help="Calls from this day (UTC)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Repeatable draw.")] = None,
) -> None:
    """Draw scored calls since go-live for a periodic human re-check of the judge."""
    from evaluators.calibration import CalibrationError, draw_sample

    context = ctx_of(ctx)
    settings = context.settings.calibration
    today = datetime.now(UTC)
    path = out or context.settings.data_dir / f"{settings.sample_prefix}-{today:%Y-%m-%d}.csv"
    try:
        report = draw_sample(
            context.engine,
            context.rubrics(),
            size=size or settings.drift_sample_size,
            out=path,
            judge=judge,
            settings=settings,
            seed=seed,
            since=since.replace(tzinfo=UTC) if since else None,
            now=today,
        )
    except CalibrationError as exc:
        fail(str(exc))
    console.print(
        f"drew {report.calls} of {report.available} calls ({report.rows} rows) into "
        f"{report.path}; fill in rater and level, then run:\n"
        f"  coachloop calibrate import {report.path} --set {report.set_name}",
        highlight=False,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
