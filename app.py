"""coachloop: the command line, one entry point for every process.

Each command reads settings once, sets up logging, and calls one function in the core.
Heavy imports (models, graphs) happen inside the commands so `--help` stays instant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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
    pretty_exceptions_show_locals=False,
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
