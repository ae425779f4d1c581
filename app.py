"""coachloop: the command line, one entry point for every process.

Each command reads settings once, sets up logging, and calls one function in the core.
Heavy imports (models, graphs) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
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
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
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
    from pydantic import ValidationError

    try:
        settings = get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"COACHLOOP_{'__'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        fail(f"Bad setting ({problems}); fix it in the environment or .env (see .env.example)")
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


# -- demo -----------------------------------------------------------------------------------


@app.command("demo")
def demo(
    ctx: typer.Context,
    reps: Annotated[
        int, typer.Option("--reps", min=9, max=200, help="Reps, team leads included.")
    ] = 24,
    days: Annotated[int, typer.Option("--days", min=7, max=366, help="Calendar days.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same demo.")] = 7,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date",
            help="Last day of calls, YYYY-MM-DD; default: the existing demo's, else today.",
        ),
    ] = None,
) -> None:
    """Create the Harbor Broadband demo organisation and its calls, and load them; safe to rerun."""
    from datetime import date

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from ingest.demo import (
        DemoError,
        DemoOptions,
        TemplateError,
        generate_demo,
        load_demo,
        resolve_end_date,
        summarise_org,
        write_demo,
    )
    from ingest.org import OrgImportError

    context = ctx_of(ctx)
    settings = context.settings
    try:
        requested = date.fromisoformat(end_date) if end_date else None
    except ValueError:
        fail(f"--end-date `{end_date}` is not a date; write it as YYYY-MM-DD")
    last_day = resolve_end_date(settings.data_dir, requested, today=datetime.now(UTC).date())
    options = DemoOptions(end_date=last_day, reps=reps, days=days, seed=seed)
    engine = context.engine
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console) as bar:
        generating = bar.add_task("generating calls", total=None)
        loading = bar.add_task("ingesting call files", total=None, start=False)

        def on_generate(done: int, total: int) -> None:
            bar.update(generating, completed=done, total=total)

        def on_ingest(done: int, total: int) -> None:
            bar.update(loading, completed=done, total=total)

        try:
            data = generate_demo(options, on_progress=on_generate)
            files = write_demo(data, settings.data_dir)
            bar.start_task(loading)
            org_report, report = load_demo(
                engine,
                files,
                settings=settings.ingest,
                data_dir=settings.data_dir,
                progress=on_ingest,
            )
        except (DemoError, OrgImportError, RubricError, TemplateError, ValueError) as exc:
            fail(str(exc))
    console.print(
        f"{options.start_date} to {options.end_date}, seed {seed}: {len(data.calls)} calls in "
        f"{len(files.calls)} files under {files.root}; {report.new} new, "
        f"{report.duplicate} already stored, {report.rejected} set aside; organisation: "
        f"{sum(org_report.created.values())} created, {sum(org_report.updated.values())} updated",
        highlight=False,
    )
    for rejection in report.rejections[:5]:
        err_console.print(f"[yellow]set aside:[/yellow] {rejection.reason}", highlight=False)

    summary = summarise_org(engine)
    teams = Table(title="Teams")
    for column in ("team", "managers", "reps", "pilot", "calls", "first call", "last call"):
        numeric = column in {"reps", "pilot", "calls"}
        teams.add_column(
            column, justify="right" if numeric else "left", no_wrap=column != "managers"
        )
    for team in summary.teams:
        teams.add_row(
            team.slug,
            ", ".join(team.managers) or "-",
            str(sum(team.reps_by_role.values())),
            str(team.pilot),
            str(team.calls),
            f"{team.first_call:%Y-%m-%d}" if team.first_call else "-",
            f"{team.last_call:%Y-%m-%d}" if team.last_call else "-",
        )
    console.print(teams)
    roles = Table(title="Reps per role")
    roles.add_column("role")
    for team in summary.teams:
        roles.add_column(team.slug, justify="right")
    roles.add_column("all", justify="right")
    for role, count in summary.reps_by_role.items():
        per_team = [str(team.reps_by_role.get(role, 0)) for team in summary.teams]
        roles.add_row(role, *per_team, str(count))
    console.print(roles)
    managers = Table(title="Managers and admins")
    for column in ("name", "access", "e-mail", "teams"):
        managers.add_column(column, overflow="fold")
    for name, email, slugs in summary.managers:
        managers.add_row(name, "manager", email or "-", ", ".join(slugs) or "-")
    for name, email in summary.admins:
        managers.add_row(name, "admin", email or "-", "all")
    console.print(managers)
    span = (
        f"{summary.first_call:%Y-%m-%d} to {summary.last_call:%Y-%m-%d}"
        if summary.first_call and summary.last_call
        else "no calls"
    )
    channels = ", ".join(f"{channel} {n}" for channel, n in summary.calls_by_channel.items())
    console.print(f"{summary.calls} calls in the database, {span} ({channels})", highlight=False)


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


# -- agreement with labelled sets -----------------------------------------------------------


@app.command("eval")
def eval_command(
    ctx: typer.Context,
    labels: Annotated[
        Path, typer.Option("--labels", help="Labelled JSONL set (id, turns, target_turn, labels).")
    ],
    criterion: Annotated[
        list[str] | None,
        typer.Option("--criterion", help="Criterion to score (repeatable); default: all labelled."),
    ] = None,
    rubric_file: Annotated[
        Path | None,
        typer.Option("--rubric", help="Rubric YAML defining the criteria; default: shipped ones."),
    ] = None,
    calibrate_on: Annotated[
        Path | None,
        typer.Option("--calibrate-on", help="Labelled JSONL to learn levels from (and save)."),
    ] = None,
    predictions_out: Annotated[
        Path | None,
        typer.Option("--predictions-out", help="Write {id, criterion, level} JSONL here."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option("--folds", min=2, help="Learn by K-fold cross-validation inside --labels."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold split.")] = 0,
) -> None:
    """Agreement of the offline judge with human labels: exact, within-one, weighted kappa."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from config.rubric import load_rubric
    from evaluators.base import EvaluatorError
    from evaluators.embeddings import SentenceEncoder
    from evaluators.evaluation import (
        EvaluationPlan,
        EvaluationResult,
        evaluate_labels,
        find_rubrics,
        load_labels,
        write_predictions,
    )
    from evaluators.offline import OfflineJudge

    context = ctx_of(ctx)
    try:
        label_file = load_labels(labels)
        training = load_labels(calibrate_on).items if calibrate_on is not None else []
        explicit = load_rubric(rubric_file) if rubric_file is not None else None
        library = [] if explicit is not None else context.rubrics().rubrics
        criteria = criterion or label_file.criteria
        rubrics = find_rubrics(criteria, rubric=explicit, library=library)
        encoder = SentenceEncoder(cache_size=500_000)
    except (EvaluatorError, RubricError) as exc:
        fail(str(exc))
    for bad in label_file.set_aside:
        err_console.print(f"[yellow]set aside:[/yellow] {bad}", highlight=False)
    judge = OfflineJudge(encoder, models_dir=context.settings.data_dir / "models", cache_turns=True)
    plan = EvaluationPlan(calibrate_on=training, folds=folds, seed=seed)
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("[progress.description]{task.description}", *columns, console=console) as bar:
        task = bar.add_task(f"scoring with {judge.name}", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        async def run() -> EvaluationResult:
            return await evaluate_labels(
                judge, label_file, rubrics, plan=plan, progress=on_progress
            )

        try:
            result = asyncio.run(run())
        except EvaluatorError as exc:
            fail(str(exc))

    for report in result.reports:
        counts = ", ".join(f"{lvl}: {n}" for lvl, n in report.label_counts.items())
        table = Table(
            title=f"{report.criterion_id} (rubric `{report.rubric}`): n={report.n}, levels {counts}"
        )
        table.add_column("method", no_wrap=True)
        for column in ("labels learnt", "n", "exact", "within-one", "QWK (95% CI)"):
            table.add_column(column, justify="right", no_wrap=True)
        for row in report.rows:
            a = row.agreement
            kappa = _figure(a.kappa).replace("\n", " [").replace("–", ", ")
            kappa += "]" if "[" in kappa else ""
            table.add_row(
                row.method,
                str(row.labels_learnt),
                f"{row.scored}" + (f" ({row.not_scored} unscored)" if row.not_scored else ""),
                _figure(a.exact, interval=False),
                _figure(a.within_one, interval=False),
                kappa,
            )
        m = report.majority
        table.add_row(
            f"majority class (always {report.majority_level})",
            "-",
            str(report.n),
            _figure(m.exact, interval=False),
            _figure(m.within_one, interval=False),
            "0.00" if m.kappa.value is None else _figure(m.kappa, interval=False),
        )
        if report.published_baseline is not None:
            table.add_row(
                "plain baseline (README)", "-", "-", "-", "-", f"{report.published_baseline:.2f}"
            )
        if report.human_kappa is not None:
            table.add_row("people (README)", "-", "-", "-", "-", f"{report.human_kappa:.2f}")
        console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    learnt = {r.criterion_id: max(x.labels_learnt for x in r.rows) for r in result.reports}
    console.print(
        f"{judge.name}: learnt from "
        + ", ".join(f"{c} {n} labels" for c, n in learnt.items())
        + "; 0 means the check rule alone",
        highlight=False,
    )
    if predictions_out is not None:
        write_predictions(predictions_out, result.predictions)
        console.print(f"{len(result.predictions)} predictions written to {predictions_out}")


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


# -- coaching -------------------------------------------------------------------------------

outcomes_app = typer.Typer(
    help="Lagging outcomes (CSAT, resolution, QA) per rep.", no_args_is_help=True
)
app.add_typer(outcomes_app, name="outcomes")


def _coaching_rules() -> Any:
    from config.coaching import CoachingConfigError, load_coaching_rules

    try:
        return load_coaching_rules()
    except CoachingConfigError as exc:
        fail(str(exc))


def _catalogue() -> Any:
    import scenarios
    from coaching.catalogue import load_catalogue
    from coaching.errors import CatalogueError

    try:
        return load_catalogue(Path(scenarios.__file__).parent / "data")
    except CatalogueError as exc:
        fail(str(exc))


def _person_id(engine: Engine, who: str | None) -> int | None:
    """A person by external id, e-mail or numeric id."""
    if who is None:
        return None
    from sqlmodel import Session, or_, select

    from store.models import Person

    with Session(engine) as session:
        if who.isdigit() and session.get(Person, int(who)) is not None:
            return int(who)
        found = session.exec(
            select(Person.id).where(or_(Person.external_id == who, Person.email == who))
        ).first()
    if found is None:
        fail(f"No person `{who}`; use an external id, e-mail or id from `coachloop org show`")
    return found


def _names(engine: Engine, ids: set[int]) -> dict[int, str]:
    from sqlmodel import Session, col, select

    from store.models import Person

    if not ids:
        return {}
    with Session(engine) as session:
        rows = session.exec(select(Person.id, Person.name).where(col(Person.id).in_(ids))).all()
    return {int(i): name for i, name in rows if i is not None}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@app.command("coach")
def coach(
    ctx: typer.Context,
    interaction_ids: Annotated[
        list[int] | None, typer.Argument(help="Interactions to coach; default: every pending one.")
    ] = None,
    all_pending: Annotated[
        bool, typer.Option("--all", help="Every scored interaction not yet coached (the default).")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most N interactions.")
    ] = None,
    show: Annotated[int, typer.Option("--show", min=0, help="Rows per table printed.")] = 15,
) -> None:
    """Run the coaching pipeline: trends, triggers, decisions, practice and messages."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table
    from sqlmodel import Session, col, select

    from coaching.graph import RunResult, open_pipeline
    from coaching.outbox import build_digests
    from store.models import Assignment, CoachingTrigger, CohortDecision, OutboxMessage, utcnow

    context = ctx_of(ctx)
    engine = context.engine
    rules = _coaching_rules()
    ids = None if all_pending or not interaction_ids else interaction_ids
    with open_pipeline(
        engine, context.settings.data_dir, rules=rules, catalogue=_catalogue()
    ) as pipeline:
        expired = pipeline.resume_expired_approvals(utcnow())
        columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress("[progress.description]{task.description}", *columns, console=console) as bar:
            task = bar.add_task("coaching", total=None)

            def on_progress(done: int, total: int, _result: RunResult) -> None:
                bar.update(task, completed=done, total=total)

            report = pipeline.run(ids, limit=limit, progress=on_progress)
    digests = build_digests(engine, utcnow(), hour_utc=rules.alerts.digest_hour_utc)
    console.print(
        f"coached {report.count('done')}, awaiting approval {report.count('awaiting_approval')}, "
        f"already coached {report.count('skipped')}, failed {report.count('failed')}; "
        f"auto-approved {len(expired)} cohort decisions, built {len(digests)} digests",
        highlight=False,
    )
    with Session(engine) as session:
        triggers = session.exec(
            select(CoachingTrigger).where(col(CoachingTrigger.id).in_(report.trigger_ids))
        ).all()
        assignments = session.exec(
            select(Assignment).where(col(Assignment.id).in_(report.assignment_ids))
        ).all()
        messages = session.exec(
            select(OutboxMessage).where(col(OutboxMessage.id).in_(report.message_ids + digests))
        ).all()
        decisions = session.exec(
            select(CohortDecision).where(col(CohortDecision.id).in_(report.cohort_decision_ids))
        ).all()
    names = _names(
        engine, {t.rep_id for t in triggers if t.rep_id} | {a.rep_id for a in assignments}
    )
    coaching_triggers = [t for t in triggers if t.kind != "session_flag"]
    flags = len(triggers) - len(coaching_triggers)
    table = Table(title=f"Triggers ({len(coaching_triggers)}, plus {flags} session flags)")
    for column in ("id", "kind", "rep / team", "criterion", "status", "why"):
        table.add_column(column)
    for t in coaching_triggers[max(len(coaching_triggers) - show, 0) :]:
        who = names.get(t.rep_id, "") if t.rep_id else f"team {t.team_id}"
        table.add_row(
            str(t.id), t.kind, who, t.criterion_id or "", t.status, t.why.get("summary", "")
        )
    console.print(table)
    if len(coaching_triggers) > show:
        console.print(f"... and {len(coaching_triggers) - show} earlier triggers")
    table = Table(title=f"Assignments ({len(assignments)})")
    for column in ("id", "rep", "scenario", "criterion", "reason"):
        table.add_column(column)
    for a in assignments[max(len(assignments) - show, 0) :]:
        table.add_row(str(a.id), names.get(a.rep_id, ""), a.scenario_slug, a.criterion_id, a.reason)
    console.print(table)
    if decisions:
        table = Table(title="Cohort responses awaiting the manager")
        for column in ("decision", "team", "criterion", "scenario", "status", "auto-approves"):
            table.add_column(column)
        for d in decisions:
            table.add_row(
                str(d.id),
                str(d.team_id),
                d.criterion_id,
                d.scenario_slug or "-",
                d.status,
                d.expires_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)
    counts: dict[tuple[str, str], int] = {}
    for m in messages:
        counts[(m.kind, m.status)] = counts.get((m.kind, m.status), 0) + 1
    table = Table(title=f"Messages queued ({len(messages)}); read them with `coachloop outbox`")
    table.add_column("kind")
    table.add_column("status")
    table.add_column("count", justify="right")
    for (kind, status), count in sorted(counts.items()):
        table.add_row(kind, status, str(count))
    console.print(table)
    for failure in report.failures[:10]:
        err_console.print(
            f"[red]failed[/red] interaction {failure.interaction_id}: {failure.error}"
        )
    if report.failures:
        raise typer.Exit(1)


@app.command("outbox")
def outbox(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", help="queued, sent, held, failed, ...")
    ] = None,
    recipient: Annotated[
        str | None, typer.Option("--recipient", help="External id, e-mail or id.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="rep_feedback, manager_alert, ...")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    show: Annotated[int | None, typer.Option("--show", help="Print one message in full.")] = None,
    breaches: Annotated[
        bool, typer.Option("--breaches", help="Feedback not delivered within the target.")
    ] = False,
) -> None:
    """The messages for reps and managers, as the Slack bot would deliver them."""
    from rich.table import Table
    from sqlmodel import Session

    from coaching.feedback import render_text
    from coaching.outbox import feedback_breaches, list_messages
    from store.models import OutboxMessage, utcnow

    engine = ctx_of(ctx).engine
    if show is not None:
        with Session(engine) as session:
            message = session.get(OutboxMessage, show)
        if message is None:
            fail(f"No message `{show}` in the outbox")
        console.print(
            f"[bold]{message.kind}[/bold] to {_names(engine, {message.recipient_id}).get(message.recipient_id)} "
            f"({message.status}, {message.attempts} attempts)"
        )
        if message.last_error:
            console.print(f"last error: {message.last_error}", highlight=False)
        console.print(render_text(message.kind, message.payload), highlight=False)
        return
    if breaches:
        rules = _coaching_rules()
        found = feedback_breaches(engine, utcnow(), sla_hours=rules.feedback.sla_hours)
        table = Table(title=f"Feedback past {rules.feedback.sla_hours:g} hours ({len(found)})")
        for column in ("message", "rep", "interaction", "at", "status", "hours"):
            table.add_column(column)
        names = _names(engine, {b.recipient_id for b in found[:limit]})
        for b in found[:limit]:
            table.add_row(
                str(b.message_id),
                names.get(b.recipient_id, ""),
                str(b.interaction_id),
                b.interaction_started_at.strftime("%Y-%m-%d %H:%M"),
                b.status,
                f"{b.hours:.1f}",
            )
        console.print(table)
        return
    messages = list_messages(
        engine, status=status, recipient_id=_person_id(engine, recipient), kind=kind, limit=limit
    )
    names = _names(engine, {m.recipient_id for m in messages})
    table = Table(title=f"Outbox ({len(messages)} shown, newest first)")
    for column in ("id", "kind", "to", "status", "tries", "created", "summary"):
        table.add_column(column)
    for m in messages:
        summary = render_text(m.kind, m.payload).splitlines()[0] if m.payload else ""
        table.add_row(
            str(m.id),
            m.kind,
            names.get(m.recipient_id, str(m.recipient_id)),
            f"{m.status} ({m.last_error})" if m.last_error else m.status,
            str(m.attempts),
            m.created_at.strftime("%Y-%m-%d %H:%M"),
            summary[:80],
        )
    console.print(table)


@app.command("team-gaps")
def team_gaps_command(
    ctx: typer.Context,
    team: Annotated[str, typer.Option("--team", help="Team slug.")],
    period: Annotated[
        str, typer.Option("--period", help="30d, 2026-11 or 2026-11-01..2026-11-30.")
    ] = "30d",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Per criterion for a team: mean, distribution, share below threshold, trend."""
    import json

    from rich.table import Table

    from coaching.errors import TeamNotFoundError
    from coaching.reports import parse_period, team_gaps

    engine = ctx_of(ctx).engine
    try:
        gaps = team_gaps(
            engine, team, parse_period(period, datetime.now(UTC).date()), rules=_coaching_rules()
        )
    except (TeamNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(gaps.as_dict()))
        return
    table = Table(title=f"{gaps.team_name}: {gaps.period.label} (against {gaps.previous.label})")
    for column in ("criterion", "mean", "1 / 2 / 3", "sessions", "reps below", "trend", "cohort"):
        table.add_column(column)
    for c in gaps.criteria:
        dist = " / ".join(str(c.distribution[k]) for k in (1, 2, 3))
        below = f"{c.reps_below}/{c.reps_eligible} ({_share(c.share_reps_below)})"
        trend = "-" if c.trend is None else f"{c.trend:+.2f}"
        table.add_row(
            c.name, _fmt(c.mean), dist, str(c.sessions), below, trend, "yes" if c.cohort else ""
        )
    console.print(table)
    if gaps.largest_gaps:
        table = Table(title=f"Largest gaps (threshold {gaps.threshold:g})")
        for column in ("rep", "criterion", "mean", "sessions"):
            table.add_column(column)
        for g in gaps.largest_gaps:
            table.add_row(g["name"], g["criterion"], _fmt(g["mean"]), str(g["sessions"]))
        console.print(table)


@app.command("report")
def report_command(
    ctx: typer.Context,
    team: Annotated[
        str | None, typer.Option("--team", help="Team slug; default: everyone.")
    ] = None,
    days: Annotated[int, typer.Option("--days", help="30 or 60: the checkpoints to include.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The coaching report: leading, process and lagging indicators at 30 and 60 days."""
    import json
    from datetime import timedelta

    from rich.table import Table

    from coaching.errors import TeamNotFoundError
    from coaching.reports import report

    if days not in (30, 60):
        fail(f"--days is {days}; use 30 or 60")
    engine = ctx_of(ctx).engine
    today = datetime.now(UTC).date()
    try:
        result = report(
            engine,
            team,
            today - timedelta(days=days - 1),
            today + timedelta(days=1),
            rules=_coaching_rules(),
        )
    except TeamNotFoundError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
        return
    console.print(f"[bold]{result.team_name}[/bold]: {result.period.label}")
    for cp in result.checkpoints:
        table = Table(
            title=f"{cp.days}-day checkpoint: leading indicators ({cp.window.label} against {cp.baseline.label})"
        )
        for column in ("criterion", "before", "now", "change", "sessions", "reps below"):
            table.add_column(column)
        for row in cp.leading:
            change = "-" if row.delta is None else f"{row.delta:+.2f}"
            table.add_row(
                row.name,
                _fmt(row.baseline_mean),
                _fmt(row.mean),
                change,
                str(row.sessions),
                _share(row.share_reps_below),
            )
        console.print(table)
        p = cp.process
        console.print(
            f"process: {p.scored}/{p.interactions} calls scored, feedback coverage "
            f"{_share(p.feedback_coverage)}, median {_fmt(p.median_hours_to_feedback, 1)} h to "
            f"delivered feedback ({p.feedback_delivered} delivered), {p.sla_breaches} past "
            f"{p.sla_hours:g} h; triggers acted on {p.triggers_acted_on}/{p.triggers}; "
            f"manager notes {p.notes}, quality {_fmt(p.note_quality_mean)} of 3",
            highlight=False,
        )
        if cp.lagging:
            table = Table(title="lagging indicators")
            for column in ("metric", "before", "now", "change", "reps"):
                table.add_column(column)
            for lag in cp.lagging:
                change = "-" if lag.delta is None else f"{lag.delta:+.2f}"
                table.add_row(
                    lag.metric, _fmt(lag.baseline_mean), _fmt(lag.mean), change, str(lag.reps)
                )
            console.print(table)
        if cp.correlations:
            table = Table(title="criterion movement against outcome movement")
            for column in ("criterion", "metric", "r", "n"):
                table.add_column(column)
            for c in cp.correlations:
                table.add_row(
                    c.criterion_id, c.metric, _fmt(c.r), f"{c.n}{'' if c.enough else ' (too few)'}"
                )
            console.print(table)
        if cp.transfer:
            table = Table(title="practice to real calls")
            for column in (
                "criterion",
                "completed: reps, after, change",
                "not completed: reps, after, change",
            ):
                table.add_column(column)
            for t in cp.transfer:
                table.add_row(
                    t.criterion_id,
                    f"{t.completed.reps}, {_fmt(t.completed.mean_after)} (n={t.completed.sessions_after}), {_fmt(t.completed.change)}",
                    f"{t.not_completed.reps}, {_fmt(t.not_completed.mean_after)} (n={t.not_completed.sessions_after}), {_fmt(t.not_completed.change)}",
                )
            console.print(table)
        if cp.pilot:
            table = Table(title="pilot reps against the rest")
            for column in ("criterion", "pilot: reps, mean, change", "rest: reps, mean, change"):
                table.add_column(column)
            for comparison in cp.pilot:
                table.add_row(
                    comparison.criterion_id,
                    f"{comparison.pilot_reps}, {_fmt(comparison.pilot_mean)}, "
                    f"{_fmt(comparison.pilot_delta)}",
                    f"{comparison.rest_reps}, {_fmt(comparison.rest_mean)}, "
                    f"{_fmt(comparison.rest_delta)}",
                )
            console.print(table)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)


@outcomes_app.command("import")
def outcomes_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV: rep, period_start, period_end and metrics.")],
) -> None:
    """Import CSAT, resolution rate, QA score and other outcomes per rep and period."""
    from rich.table import Table

    from coaching.errors import OutcomeImportError
    from coaching.outcomes import import_outcomes
    from store.models import utcnow

    engine = ctx_of(ctx).engine
    rules = _coaching_rules()
    try:
        result = import_outcomes(engine, file, metrics=rules.outcomes.metrics, now=utcnow())
    except OutcomeImportError as exc:
        fail(str(exc))
    console.print(
        f"{file.name}: {result.new} new, {result.updated} updated, {result.unchanged} unchanged, "
        f"{len(result.rejected)} rows set aside",
        highlight=False,
    )
    if result.rejected:
        table = Table(title="Rows set aside")
        table.add_column("line", justify="right")
        table.add_column("reason")
        for row in result.rejected:
            table.add_row(str(row.line), row.reason)
        console.print(table)


@app.command("approvals")
def approvals(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Argument(help="approve or decline")] = None,
    decision_id: Annotated[int | None, typer.Argument(help="The cohort decision id.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="The manager deciding.")] = None,
) -> None:
    """List cohort responses waiting for a manager, or approve or decline one."""
    from rich.table import Table
    from sqlmodel import Session, col, select

    from coaching.errors import ApprovalError
    from coaching.graph import open_pipeline
    from store.models import CohortDecision, Team

    context = ctx_of(ctx)
    engine = context.engine
    if action is None:
        with Session(engine) as session:
            pending = session.exec(
                select(CohortDecision, Team.slug)
                .join(Team, col(Team.id) == col(CohortDecision.team_id))
                .where(CohortDecision.status == "pending")
                .order_by(col(CohortDecision.id))
            ).all()
        table = Table(title=f"Cohort responses awaiting approval ({len(pending)})")
        for column in ("id", "team", "criterion", "reps", "scenario", "auto-approves"):
            table.add_column(column)
        for d, slug in pending:
            table.add_row(
                str(d.id),
                slug,
                d.criterion_id,
                str(len(d.rep_ids)),
                d.scenario_slug or "-",
                d.expires_at.strftime("%Y-%m-%d %H:%M"),
            )
        console.print(table)
        return
    if action not in ("approve", "decline") or decision_id is None:
        fail("Use `coachloop approvals approve ID` or `coachloop approvals decline ID`")
    with open_pipeline(
        engine, context.settings.data_dir, rules=_coaching_rules(), catalogue=_catalogue()
    ) as pipeline:
        try:
            result = pipeline.decide_cohort(
                decision_id, approved=action == "approve", by=_person_id(engine, by)
            )
        except ApprovalError as exc:
            fail(str(exc))
    console.print(f"cohort decision {decision_id}: {result.get('status')}")


# -- practice -------------------------------------------------------------------------------

scenario_app = typer.Typer(
    help="Practice scenarios: list them, lint them, draft one from a real call.",
    no_args_is_help=True,
)
app.add_typer(scenario_app, name="scenario")


def _practice_library(settings: Settings) -> Any:
    from config.company import CompanyError, load_company
    from personas import PersonaError, PersonaLibrary
    from scenarios import ScenarioError, ScenarioLibrary

    practice = settings.practice
    try:
        company = load_company(practice.company_file)
        personas = PersonaLibrary.from_dir(company, practice.persona_dir)
        library = ScenarioLibrary.from_dir(company, personas, practice.scenario_dir)
    except (CompanyError, PersonaError, ScenarioError) as exc:
        fail(str(exc))
    for problem in personas.errors + library.errors:
        err_console.print(f"[yellow]set aside:[/yellow] {problem}", highlight=False)
    return library


@scenario_app.command("list")
def scenario_list(
    ctx: typer.Context,
    role: Annotated[str | None, typer.Option("--role", help="Only this rep role.")] = None,
    criterion: Annotated[
        str | None, typer.Option("--criterion", help="Only scenarios for this criterion id.")
    ] = None,
    difficulty: Annotated[
        str | None, typer.Option("--difficulty", help="easy, medium or hard.")
    ] = None,
) -> None:
    """The scenarios reps can practise, with their persona, criteria and difficulty."""
    from rich.table import Table

    if difficulty is not None and difficulty not in ("easy", "medium", "hard"):
        fail(f"Difficulty `{difficulty}` is not one of easy, medium, hard")
    library = _practice_library(ctx_of(ctx).settings)
    found = library.find(role=role, criterion=criterion, difficulty=difficulty)
    table = Table(title=f"Scenarios ({len(found)})")
    table.add_column("scenario", no_wrap=True)
    for column in ("role", "difficulty", "criteria", "persona", "title"):
        table.add_column(column)
    for s in found:
        persona = library.persona_for(s)
        table.add_row(
            s.slug, s.role, s.difficulty, ", ".join(s.criterion_ids), persona.name, s.title
        )
    console.print(table)


@scenario_app.command("lint")
def scenario_lint(
    ctx: typer.Context,
    files: Annotated[
        list[Path] | None,
        typer.Argument(help="Scenario files to check, e.g. a draft; default: the library."),
    ] = None,
) -> None:
    """Check scenarios: criteria exist in the role's rubric, anchors are observable, signals
    can be observed, and every rubric criterion is practised at two difficulties."""
    from rich.table import Table

    from config.rubric_lint import Severity, has_errors
    from scenarios import ScenarioError, ScenarioLibrary, load_scenario
    from scenarios.lint import lint_library, lint_scenario

    context = ctx_of(ctx)
    library = _practice_library(context.settings)
    rubrics = context.rubrics()
    failed = bool(library.errors or library.personas.errors)
    if files:
        report = {}
        for path in files:
            try:
                scenario = load_scenario(path, library.company, library.personas)
            except ScenarioError as exc:
                err_console.print(f"[red]error:[/red] {exc}", highlight=False)
                failed = True
                continue
            alone = ScenarioLibrary([scenario], personas=library.personas, company=library.company)
            report[str(path)] = lint_scenario(scenario, alone, rubrics)
    else:
        report = lint_library(library, rubrics)
    for slug, findings in report.items():
        if not findings:
            console.print(f"[green]ok[/green] {slug}", highlight=False)
            continue
        where = library.paths.get(slug, slug)
        table = Table(title=str(where), show_lines=True)
        for column in ("severity", "where", "problem", "suggestion"):
            table.add_column(column)
        for f in findings:
            colour = "red" if f.severity is Severity.error else "yellow"
            table.add_row(f"[{colour}]{f.severity}[/{colour}]", f.where, f.problem, f.suggestion)
        console.print(table)
        failed = failed or has_errors(findings)
    if not files:
        console.print(
            f"{len(library)} scenarios, {len(library.personas)} personas; "
            f"{len(library.errors) + len(library.personas.errors)} files set aside",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


@scenario_app.command("draft")
def scenario_draft(
    ctx: typer.Context,
    from_interaction: Annotated[
        int, typer.Option("--from-interaction", help="Id of a scored real call.")
    ],
    criterion: Annotated[
        str | None,
        typer.Option("--criterion", help="Criterion to build on; default: the lowest scored."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the YAML here instead of stdout.")
    ] = None,
) -> None:
    """Draft a scenario YAML from a real low-scoring call, for an author to review."""
    from scenarios.draft import DraftError, draft_from_interaction

    context = ctx_of(ctx)
    library = _practice_library(context.settings)
    try:
        draft = draft_from_interaction(
            context.engine, from_interaction, context.rubrics(), library, criterion_id=criterion
        )
    except DraftError as exc:
        fail(str(exc))
    if out is None:
        print(draft.yaml_text, end="")  # noqa: T201 (the YAML is the command's output)
        return
    if out.exists():
        fail(f"{out} already exists; choose another --out or remove it")
    out.write_text(draft.yaml_text, encoding="utf-8")
    console.print(
        f"drafted `{draft.slug}` ({draft.criterion_id} scored {draft.level}) to {out}",
        highlight=False,
    )


def _show_result(result: Any) -> None:
    from rich.table import Table

    console.rule("feedback")
    console.print(
        f"{result.title}: {result.outcome.replace('_', ' ')} ({result.end_reason}), "
        f"{result.rep_turns} turns",
        highlight=False,
    )
    if result.unscored_reason:
        console.print(f"[yellow]not scored:[/yellow] {result.unscored_reason}", highlight=False)
    if result.feedback:
        table = Table(show_lines=True)
        for column in ("criterion", "level", "the moment", "what good looks like"):
            table.add_column(column)
        for item in result.feedback:
            level = "n/a" if item.level is None else str(item.level)
            mark = " [cyan](practised)[/cyan]" if item.targeted else ""
            moment = f'"{item.moment.quote}"' if item.moment else "-"
            good = item.good_looks_like
            if item.good_example:
                good += f'\ne.g. "{item.good_example}"'
            table.add_row(f"{item.name}{mark}", level, moment, good)
        console.print(table)
    for comparison in result.comparison:
        real = (
            f"{comparison.real_mean:.2f} over {comparison.real_sessions} calls"
            if comparison.real_mean is not None
            else "no scored calls yet"
        )
        practice = comparison.practice_level if comparison.practice_level is not None else "n/a"
        console.print(
            f"{comparison.criterion_id}: {practice} in practice; real calls {real}",
            highlight=False,
        )
    if result.assignment_id is not None:
        console.print(f"assignment {result.assignment_id} completed", highlight=False)
    if result.note:
        console.print(f"[yellow]{result.note}[/yellow]", highlight=False)


async def _practice_loop(driver: Any, start: Any) -> None:
    import asyncio

    while True:
        try:
            text = await asyncio.to_thread(console.input, "[bold]you>[/bold] ")
        except EOFError:
            text = "/end"
        pieces = []
        console.print(f"[magenta]{start.persona}>[/magenta] ", end="", highlight=False)
        async for piece in driver.stream_rep_turn(start.session_id, text):
            console.print(piece + " ", end="", highlight=False)
            pieces.append(piece)
        console.print()
        view = await driver.get_session(start.session_id)
        if view.status == "ended":
            _show_result(view.result)
            return


@app.command("practice")
def practice(
    ctx: typer.Context,
    scenario: Annotated[
        str | None, typer.Argument(help="Scenario slug; default: the rep's open assignment.")
    ] = None,
    rep: Annotated[
        str | None, typer.Option("--rep", help="Your external id, to keep and compare results.")
    ] = None,
    engine_kind: Annotated[
        str | None, typer.Option("--engine", help="Persona: auto, scripted or llm.")
    ] = None,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Carry on a session by its id.")
    ] = None,
) -> None:
    """Practise a scenario in the terminal. Enter on its own is a silence; `/end` or
    "let's wrap up" ends the session and shows your feedback."""
    import asyncio

    from evaluators.base import EvaluatorError
    from evaluators.embeddings import SentenceEncoder
    from evaluators.judges import make_judge
    from scenarios import (
        PracticeDriver,
        PracticeRecorder,
        ScenarioError,
        TurnObserver,
        make_engine,
        open_checkpointer,
    )
    from store.models import Assignment, Person

    context = ctx_of(ctx)
    settings = context.settings
    library = _practice_library(settings)
    rubrics = context.rubrics()
    db = context.engine
    assignment_id: int | None = None
    if scenario is None and resume is None:
        from sqlmodel import Session, col, select

        if rep is None:
            fail("Name a scenario (see `coachloop scenario list`) or give --rep to take yours")
        with Session(db) as session:
            open_one = session.exec(
                select(Assignment)
                .join(Person, col(Person.id) == col(Assignment.rep_id))
                .where(Person.external_id == rep, Assignment.status == "open")
                .order_by(col(Assignment.created_at))
            ).first()
        if open_one is None:
            fail(f"No open assignment for `{rep}`; name a scenario (`coachloop scenario list`)")
        scenario, assignment_id = open_one.scenario_slug, open_one.id
    try:
        persona_engine = make_engine(engine_kind or settings.practice.persona_engine, settings.llm)
        judge = make_judge(settings.practice.judge, settings, settings.data_dir / "models")
    except (ValueError, EvaluatorError) as exc:
        fail(str(exc))
    checkpoints = settings.practice.checkpoint_url or settings.data_dir / "practice.sqlite"

    async def run() -> None:
        with console.status("loading the practice models"):
            observer = TurnObserver(await asyncio.to_thread(SentenceEncoder))
        async with open_checkpointer(checkpoints) as saver:
            driver = PracticeDriver(
                library=library,
                rubrics=rubrics,
                engine=persona_engine,
                observer=observer,
                recorder=PracticeRecorder(judge, rubrics, db),
                checkpointer=saver,
            )
            if resume is not None:
                view = await driver.get_session(resume)
                if view.status == "ended":
                    _show_result(view.result)
                    return
                chosen = library.get(view.scenario)
                persona = library.persona_for(chosen)
                for speaker, text in view.turns:
                    who = "you" if speaker == "rep" else persona.name
                    console.print(f"{who}> {text}", highlight=False)
                from scenarios import SessionStart

                start = SessionStart(
                    session_id=resume,
                    opening="",
                    scenario=chosen.slug,
                    title=chosen.title,
                    briefing=chosen.briefing,
                    persona=persona.name,
                    silence_timeout_s=chosen.silence_timeout_s,
                    turn_limit=chosen.turn_limit,
                    time_box_minutes=chosen.time_box_minutes,
                )
            else:
                assert scenario is not None
                start = await driver.start_session(
                    scenario, rep_external_id=rep, assignment_id=assignment_id, channel="chat"
                )
                console.rule(start.title)
                console.print(start.briefing, highlight=False)
                console.print(
                    f"[dim]session {start.session_id}; persona: {persona_engine.name}; "
                    f"up to {start.turn_limit} turns, {start.time_box_minutes:g} minutes[/dim]"
                )
                console.print(
                    f"[magenta]{start.persona}>[/magenta] {start.opening}", highlight=False
                )
            await _practice_loop(driver, start)

    try:
        asyncio.run(run())
    except ScenarioError as exc:
        fail(str(exc))


# -- web app --------------------------------------------------------------------------------

user_app = typer.Typer(help="Sign-in to the web app: passwords.", no_args_is_help=True)
app.add_typer(user_app, name="user")


def _practice_service(context: Context) -> Any:
    """The text practice chat's driver for the web app, or None (with the reason) when a part
    it needs is not available."""
    import asyncio
    from contextlib import asynccontextmanager

    from evaluators.base import EvaluatorError
    from evaluators.judges import make_judge
    from scenarios import (
        PracticeDriver,
        PracticeRecorder,
        TurnObserver,
        make_engine,
        open_checkpointer,
    )
    from web import PracticeService

    settings = context.settings
    library = _practice_library(settings)
    rubrics = context.rubrics()
    db = context.engine
    try:
        persona_engine = make_engine(settings.practice.persona_engine, settings.llm)
        judge = make_judge(settings.practice.judge, settings, settings.data_dir / "models")
    except (ValueError, EvaluatorError) as exc:
        err_console.print(f"[yellow]practice pages off:[/yellow] {exc}", highlight=False)
        return None
    checkpoints = settings.practice.checkpoint_url or settings.data_dir / "practice.sqlite"

    @asynccontextmanager
    async def open_driver() -> Any:
        from evaluators.embeddings import SentenceEncoder

        observer = TurnObserver(await asyncio.to_thread(SentenceEncoder))
        async with open_checkpointer(checkpoints) as saver:
            yield PracticeDriver(
                library=library,
                rubrics=rubrics,
                engine=persona_engine,
                observer=observer,
                recorder=PracticeRecorder(judge, rubrics, db),
                checkpointer=saver,
            )

    return PracticeService(library, open_driver)


def _voice_practice(context: Context) -> Any:
    """Voice practice over the web app's WebSocket; its speech models load when the app
    starts (the time each takes is logged)."""
    from voice.practice import VoicePractice

    return VoicePractice(context.settings.voice, context.settings.data_dir)


def build_web_app(context: Context, *, practice: bool = True, voice: bool = True) -> Any:
    """The FastAPI app `coachloop serve` runs. Other edges mount onto it here (the Slack
    bot's HTTP handler takes `/slack/*`, which the web app leaves free)."""
    from web import create_app

    service = _practice_service(context) if practice else None
    with_voice = voice and service is not None and context.settings.voice.web_practice

    try:
        return create_app(
            engine=context.engine,
            settings=context.settings,
            rubrics=context.rubrics(),
            rules=_coaching_rules(),
            catalogue=_catalogue(),
            practice=service,
            voice=_voice_practice(context) if with_voice else None,
        )
    except ValueError as exc:
        fail(str(exc))


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on; default 127.0.0.1.")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port; default 8000.")] = None,
    no_practice: Annotated[
        bool, typer.Option("--no-practice", help="Leave out the practice pages.")
    ] = False,
    no_voice: Annotated[
        bool,
        typer.Option(
            "--no-voice", help="Leave out voice practice (and the loading of speech models)."
        ),
    ] = False,
) -> None:
    """Serve the web app: team dashboards, rep pages, calibration, messages and practice;
    with a Slack bot token, the Slack app and its delivery run in the same server."""
    context = ctx_of(ctx)
    web_app = build_web_app(context, practice=not no_practice, voice=not no_voice)

    def with_slack(url: str) -> None:
        attach_slack(context, web_app, web_base_url=url)

    serve_web(context, web_app, host=host, port=port, before=with_slack)


def serve_web(
    context: Context,
    web_app: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    edges: Any = (),
    before: Any = None,
) -> None:
    """Serve `web_app` in the foreground until Ctrl+C, with `edges` (see `web.serving`)
    running beside it. The address is bound first, so a taken port fails before anything
    starts; `before(url)` is called once it is listening."""
    import asyncio

    from web.serving import ListenError, listen, serve as serve_app

    web = context.settings.web
    address, number = host or web.host, port or web.port
    try:
        sock = listen(address, number)
    except ListenError as exc:
        fail(str(exc))
    shown = f"[{address}]" if ":" in address else address
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    if before is not None:
        before(url)
    console.print(f"coachloop web app on {url} (Ctrl+C stops it)", highlight=False)
    try:
        asyncio.run(serve_app(web_app, sock, edges=edges))
    except KeyboardInterrupt:
        console.print("web app stopped")


@user_app.command("set-password")
def user_set_password(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="External id or e-mail of the person.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a person's web sign-in password (ends their signed-in sessions)."""
    import sys

    from web.users import UserError, set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        found = set_password(ctx_of(ctx).engine, person, password, now=datetime.now(UTC))
    except UserError as exc:
        fail(str(exc))
    console.print(f"password set for {found.name} ({found.external_id}, {found.access})")


@user_app.command("demo-passwords")
def user_demo_passwords(
    ctx: typer.Context,
    password: Annotated[
        str | None,
        typer.Option("--password", help="Instead of the documented demo password."),
    ] = None,
) -> None:
    """Give everyone without a password the demo password, to try the demo organisation."""
    from web.users import DEMO_PASSWORD, set_demo_passwords

    chosen = password or DEMO_PASSWORD
    changed = set_demo_passwords(ctx_of(ctx).engine, password=chosen, now=datetime.now(UTC))
    for person in changed[:8]:
        console.print(f"  {person.external_id} ({person.access})", highlight=False)
    if len(changed) > 8:
        console.print(f"  ... and {len(changed) - 8} more", highlight=False)
    console.print(
        f"{len(changed)} people can now sign in with the password `{chosen}`; everyone else "
        "kept theirs. Not for a real organisation: set real passwords with "
        "`coachloop user set-password`.",
        highlight=False,
    )


# -- Slack ----------------------------------------------------------------------------------


def _slack_parts(context: Context, *, practice: bool = True) -> dict[str, Any]:
    """What the Slack app is built from; text practice is left out (with the reason) when
    its judge cannot be made."""
    from evaluators.base import EvaluatorError
    from evaluators.judges import make_judge

    settings = context.settings
    parts: dict[str, Any] = {
        "engine": context.engine,
        "settings": settings,
        "rubrics": context.rubrics(),
        "rules": _coaching_rules(),
        "catalogue": _catalogue(),
    }
    if practice:
        try:
            parts["judge"] = make_judge(
                settings.practice.judge, settings, settings.data_dir / "models"
            )
            parts["library"] = _practice_library(settings)
        except (ValueError, EvaluatorError) as exc:
            err_console.print(f"[yellow]practice in Slack off:[/yellow] {exc}", highlight=False)
    return parts


def slack_coroutine(
    context: Context,
    *,
    practice: bool = True,
    port: int | None = None,
    deliver: bool = True,
    started: Any = None,
) -> Any:
    """The Slack app and the outbox delivery as one coroutine (`asyncio.run` it), for a
    process of its own; it ends on SIGINT or SIGTERM. Raises `bot.app.BotConfigError` when
    a token or the signing secret is missing."""
    from bot.app import check_settings, serve

    check_settings(context.settings.slack)
    return serve(
        **_slack_parts(context, practice=practice), port=port, deliver=deliver, started=started
    )


def attach_slack(context: Context, web_app: Any, *, web_base_url: str | None = None) -> bool:
    """Run the Slack app inside the web app's server when a bot token is set (Socket Mode,
    or HTTP at the web app's `/slack/events`); False, with the reason printed, when it
    does not. `web_base_url` is where the web app listens, for links from Slack when
    COACHLOOP_SLACK__WEB_BASE_URL is unset."""
    from bot.app import BotConfigError, attach

    if not context.settings.slack_enabled:
        console.print(
            "Slack is off (no COACHLOOP_SLACK__BOT_TOKEN): messages stay in the outbox, "
            "on the web app's Messages page and in `coachloop outbox`",
            highlight=False,
        )
        return False
    try:
        attach(web_app, web_base_url=web_base_url, **_slack_parts(context))
    except BotConfigError as exc:
        err_console.print(f"[yellow]Slack off:[/yellow] {exc}", highlight=False)
        return False
    mode = "Socket Mode" if context.settings.slack.app_token else "HTTP at /slack/events"
    console.print(f"Slack app on, in {mode}, delivering the outbox", highlight=False)
    return True


@app.command("slack")
def slack_command(
    ctx: typer.Context,
    port: Annotated[
        int | None, typer.Option("--port", help="HTTP mode: port; default 3000.")
    ] = None,
    no_practice: Annotated[
        bool, typer.Option("--no-practice", help="No text practice in DM threads.")
    ] = False,
    no_delivery: Annotated[
        bool, typer.Option("--no-delivery", help="Answer Slack only; leave the outbox alone.")
    ] = False,
    manifest: Annotated[
        bool, typer.Option("--manifest", help="Print the Slack app manifest and stop.")
    ] = False,
) -> None:
    """Run the Slack app with the outbox delivery: Socket Mode when an app token is set,
    else HTTP at /slack/events. Ctrl+C stops it."""
    import asyncio

    from bot.app import BotConfigError, RunningBot, manifest_text

    if manifest:
        print(manifest_text(), end="")  # noqa: T201 (the manifest is the command's output)
        return
    context = ctx_of(ctx)

    def started(bot: RunningBot) -> None:
        if bot.socket_mode:
            where = "connected to Slack in Socket Mode"
        else:
            where = (
                f"listening on http://{context.settings.slack.host}:{bot.http_port}/slack/events"
            )
        work = "" if no_delivery else "; delivering the outbox"
        console.print(
            f"coachloop Slack app {where}{work} (Ctrl+C stops it)", highlight=False, soft_wrap=True
        )
        if bot.undelivered.items:
            reasons = ", ".join(f"{k} {v}" for k, v in bot.undelivered.by_reason().items())
            err_console.print(
                f"[yellow]{len(bot.undelivered.items)} messages could not be delivered[/yellow] "
                f"({reasons}); see `coachloop outbox --status failed`",
                highlight=False,
                soft_wrap=True,
            )

    try:
        job = slack_coroutine(
            context, practice=not no_practice, port=port, deliver=not no_delivery, started=started
        )
        asyncio.run(job)
    except BotConfigError as exc:
        fail(str(exc))


# -- voice ----------------------------------------------------------------------------------

voice_app = typer.Typer(help="Voice practice: the worker for LiveKit rooms.", no_args_is_help=True)
app.add_typer(voice_app, name="voice")


@dataclass(frozen=True)
class WorkerPractice:
    """The practice driver in a voice worker's job processes, opened from the settings.

    It is sent to each job process when the process starts (so it must pickle): the process
    loads the sentence encoder once, and opens a driver on the shared database and
    checkpointer for each room.
    """

    settings: Settings

    def prewarm(self) -> None:
        _worker_sentence_encoder()

    def open_driver(self) -> Any:
        """An async context manager that yields a `PracticeDriver`."""
        from contextlib import asynccontextmanager

        from evaluators.judges import make_judge
        from scenarios import (
            PracticeDriver,
            PracticeRecorder,
            TurnObserver,
            make_engine,
            open_checkpointer,
        )
        from store.db import make_engine as make_db_engine

        settings = self.settings

        @asynccontextmanager
        async def opened() -> Any:
            library = _practice_library(settings)
            rubrics = RubricLibrary.from_dir(settings.rubric_dir)
            db = make_db_engine(settings.resolved_database_url)
            judge = make_judge(settings.practice.judge, settings, settings.data_dir / "models")
            checkpoints = settings.practice.checkpoint_url or settings.data_dir / "practice.sqlite"
            try:
                async with open_checkpointer(checkpoints) as saver:
                    yield PracticeDriver(
                        library=library,
                        rubrics=rubrics,
                        engine=make_engine(settings.practice.persona_engine, settings.llm),
                        observer=TurnObserver(_worker_sentence_encoder()),
                        recorder=PracticeRecorder(judge, rubrics, db),
                        checkpointer=saver,
                    )
            finally:
                db.dispose()

        return opened()


@lru_cache(maxsize=1)
def _worker_sentence_encoder() -> Any:
    from evaluators.embeddings import SentenceEncoder

    return SentenceEncoder()


@voice_app.command("worker")
def voice_worker(
    ctx: typer.Context,
    idle_processes: Annotated[
        int | None,
        typer.Option(
            "--idle-processes",
            min=0,
            help="Job processes kept warm with the models loaded; default from settings (1).",
        ),
    ] = None,
) -> None:
    """Take voice practice rooms from a LiveKit server (LIVEKIT_URL, LIVEKIT_API_KEY,
    LIVEKIT_API_SECRET) until Ctrl+C or SIGTERM, which first lets running sessions finish.

    Start one per machine, or more: LiveKit gives each room to a worker with capacity.
    """
    from evaluators.base import EvaluatorError
    from evaluators.judges import make_judge
    from scenarios import make_engine
    from voice import VoiceError
    from voice.livekit_worker import (
        WorkerConfigError,
        WorkerSetup,
        build_server,
        check_models,
        check_settings,
        run_forever,
    )

    context = ctx_of(ctx)
    settings = context.settings
    livekit = settings.livekit
    if idle_processes is not None:
        livekit = livekit.model_copy(update={"idle_processes": idle_processes})
    try:
        check_settings(livekit)
    except WorkerConfigError as exc:
        fail(str(exc))
    # everything a job process opens is checked once here, so a mistake stops the worker now
    _ = context.engine  # migrates the schema once, not in every job process
    _practice_library(settings)
    context.rubrics()
    try:
        make_engine(settings.practice.persona_engine, settings.llm)
        make_judge(settings.practice.judge, settings, settings.data_dir / "models")
    except (ValueError, EvaluatorError) as exc:
        fail(str(exc))
    setup = WorkerSetup(
        livekit=livekit,
        voice=settings.voice,
        data_dir=settings.data_dir,
        practice=WorkerPractice(settings),
    )
    try:
        check_models(setup)
    except VoiceError as exc:
        fail(str(exc))
    console.print(
        f"voice worker `{livekit.agent_name}` connecting to {livekit.url} "
        f"({livekit.idle_processes} warm job processes; Ctrl+C stops it)",
        highlight=False,
    )
    run_forever(
        build_server(setup),
        on_registered=lambda worker_id: console.print(
            f"registered with LiveKit as {worker_id}", highlight=False
        ),
    )


# -- job queue ------------------------------------------------------------------------------

jobs_app = typer.Typer(
    help="Score and coach calls on worker machines through a Celery broker (Redis, RabbitMQ).",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")


def _job_app(context: Context) -> Any:
    from coaching.jobs import JobQueueError, create_job_app

    try:
        return create_job_app(context.settings)
    except JobQueueError as exc:
        fail(str(exc))


@jobs_app.command("worker")
def jobs_worker(
    ctx: typer.Context,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs at once (processes).")
    ] = 1,
) -> None:
    """Take scoring and coaching jobs from the queue until stopped; run one per machine or more."""
    from celery.signals import worker_process_shutdown

    context = ctx_of(ctx)
    context.engine.dispose()  # migrated now; each worker process opens its own connections
    jobs = _job_app(context)

    @worker_process_shutdown.connect(weak=False)
    def close_runtime(**_: Any) -> None:
        from coaching.jobs import runtime_of

        runtime_of(jobs).close()

    console.print(
        f"job worker on queue `{context.settings.jobs.queue}`, judge "
        f"`{context.settings.jobs.judge}`, {concurrency} at once (Ctrl+C stops it)",
        highlight=False,
    )
    pool = "solo" if concurrency == 1 else "prefork"
    jobs.worker_main(
        ["worker", "--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING"]
    )


@jobs_app.command("enqueue")
def jobs_enqueue(
    ctx: typer.Context,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N calls.")] = None,
) -> None:
    """Queue every call not yet scored and coached for the workers; safe to run again."""
    from coaching.jobs import enqueue_pending

    context = ctx_of(ctx)
    jobs = _job_app(context)
    try:
        calls, sent = enqueue_pending(jobs, context.engine, context.settings, limit=limit)
    except OSError as exc:
        fail(
            f"The broker at {context.settings.jobs.broker_url} did not answer "
            f"({type(exc).__name__}); check COACHLOOP_JOBS__BROKER_URL and that it is running"
        )
    console.print(
        f"queued {calls} calls in {sent} jobs on `{context.settings.jobs.queue}`", highlight=False
    )


# -- the main job ---------------------------------------------------------------------------


@app.command("run")
def run(
    ctx: typer.Context,
    judge: Annotated[str, typer.Option("--judge", help="`offline` or `llm`.")] = "offline",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the demo organisation.")] = 7,
    reps: Annotated[
        int, typer.Option("--reps", min=9, max=200, help="Reps in the demo organisation.")
    ] = 24,
    days: Annotated[int, typer.Option("--days", min=7, max=366, help="Days of demo calls.")] = 30,
    no_serve: Annotated[
        bool, typer.Option("--no-serve", help="Stop after the summary; do not serve the web app.")
    ] = False,
    host: Annotated[
        str | None, typer.Option("--host", help="Web app address; default 127.0.0.1.")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="Web app port; default 8000.")] = None,
) -> None:
    """The main job on the embedded default: demo organisation, scoring, coaching, summary,
    then the web app on the demo organisation until Ctrl+C.

    Safe to run again: each step only does what is not done yet.
    """
    console.rule("1/4 demo organisation")
    demo(ctx, reps=reps, days=days, seed=seed)
    console.rule("2/4 scoring every call")
    score(ctx, judge=judge)
    console.rule("3/4 coaching pipeline")
    coach(ctx)
    console.rule("4/4 what coachloop found")
    coverage_command(ctx, period="month")
    outbox(ctx, limit=12)
    context = ctx_of(ctx)
    sign_ins = _demo_sign_ins(context)
    if no_serve:
        web = context.settings.web
        where = f"http://{web.host}:{web.port}/"
        _print_demo_sign_ins(sign_ins, f"run `coachloop serve`, open {where} and sign in")
        return
    console.rule("the web app")
    web_app = build_web_app(context)

    def before_serving(url: str) -> None:
        attach_slack(context, web_app, web_base_url=url)
        _print_demo_sign_ins(sign_ins, f"open {url} and sign in")

    serve_web(context, web_app, host=host, port=port, before=before_serving)


def _demo_sign_ins(context: Context) -> dict[str, Any]:
    """Give the demo's people the demo password (those without one), and say who to try."""
    from web.users import demo_sign_ins, set_demo_passwords

    set_demo_passwords(context.engine, now=datetime.now(UTC))
    return demo_sign_ins(context.engine)


def _print_demo_sign_ins(found: dict[str, Any], how: str) -> None:
    from web.users import DEMO_PASSWORD

    if not found:
        console.print(
            "Sign in with a password set by `coachloop user set-password` (the demo's people "
            "have passwords of their own already).",
            highlight=False,
        )
        return
    console.print(f"Dashboard: {how}.", highlight=False, soft_wrap=True)
    labels = {"manager": "as the demo manager", "admin": "as an admin", "rep": "as a rep"}
    for kind, person in found.items():
        email = f" ({person.email})" if person.email else ""
        console.print(
            f"  {labels[kind]}: [bold]{person.external_id}[/bold]{email}, password "
            f"[bold]{DEMO_PASSWORD}[/bold]",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "[yellow]Demo passwords, for the demo organisation only:[/yellow] everyone without a "
        f"password signs in with `{DEMO_PASSWORD}`; give real people real passwords with "
        "`coachloop user set-password`.",
        highlight=False,
        soft_wrap=True,
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
