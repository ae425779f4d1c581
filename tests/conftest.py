"""Shared fixtures: a clean environment and a migrated database on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from config.settings import Settings
from store.db import make_engine, migrate

# Tests never read a developer's `.env`.
Settings.model_config["env_file"] = None

POSTGRES_URL = os.environ.get(
    "COACHLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
EVAL_DIR = SHARED_DIR / "eval"

_ENV_PREFIXES = ("COACHLOOP_", "SLACK_", "OPENAI_", "LIVEKIT_")


def _ours(key: str) -> bool:
    return key.startswith(_ENV_PREFIXES) and key != "COACHLOOP_TEST_POSTGRES_URL"


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if _ours(key):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    yield
    # LiveKit's worker writes its URL and keys into os.environ; what a test's code set there
    # must not reach fixtures of a wider scope, which are built before this one runs
    for key in list(os.environ):
        if _ours(key) or key == "DATABASE_URL":
            os.environ.pop(key, None)


def _postgres_engine(schema: str) -> Engine:
    admin = make_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__}). The suite "
            "exercises both databases; start the server or set COACHLOOP_TEST_POSTGRES_URL.",
            pytrace=False,
        )
    admin.dispose()
    from sqlmodel import create_engine

    return create_engine(
        POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_pre_ping=True
    )


def _drop_postgres_schema(schema: str) -> None:
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'coachloop.db'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = _postgres_engine(schema)
    migrate(engine)
    yield engine
    engine.dispose()
    _drop_postgres_schema(schema)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests that do not depend on the database kind."""
    engine = make_engine(f"sqlite:///{tmp_path / 'coachloop.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Session]:
    with Session(db_engine, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def eval_dir() -> Path:
    if not EVAL_DIR.is_dir():
        pytest.skip(f"evaluation data not found at {EVAL_DIR}; it lives beside the repository")
    return EVAL_DIR
