"""Fixtures for the web app: the seeded organisation on SQLite and PostgreSQL, an app over
it with a fixed clock, and signed-in clients.

The organisation is built once per database kind and shared; tests that change it (a
dispute, an approval, a calibration set) use their own rows, so the order does not matter.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from config.settings import Settings, WebSettings
from store.db import make_engine, migrate

# headless Chromium over the live app, for page tests (see tests/web/browser.py)
from tests.web.browser import (  # noqa: F401
    browser,
    chromium_extra_args,
    pytest_terminal_summary,
    shoot_page,
    web_app,
    web_page,
    web_seed,
    web_url,
)
from tests.web.seed import NOW, PASSWORD, RUBRICS, Seed, seed_org
from web import create_app

SECRET = "test-secret-" + "x" * 40


@pytest.fixture(scope="session")
def _sqlite_seed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("web-seed")
    engine = make_engine(f"sqlite:///{folder / 'coachloop.db'}")
    migrate(engine)
    seed_org(engine, folder)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return folder


@pytest.fixture(scope="session")
def _postgres_seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    from tests.conftest import _drop_postgres_schema, _postgres_engine

    schema = f"t_web_{uuid.uuid4().hex[:8]}"
    engine = _postgres_engine(schema)
    migrate(engine)
    seed = seed_org(engine, tmp_path_factory.mktemp("web-pg"))
    yield seed
    engine.dispose()
    _drop_postgres_schema(schema)


def sqlite_copy(template: Path, folder: Path) -> Seed:
    """A private copy of the seeded SQLite organisation, with the ids the seed gave out."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("coachloop.db", "checkpoints.sqlite"):
        if (template / name).exists():
            shutil.copyfile(template / name, folder / name)
    engine = make_engine(f"sqlite:///{folder / 'coachloop.db'}")
    return _reload(engine, folder)


def _reload(engine: Engine, folder: Path) -> Seed:
    from sqlmodel import Session, col, select

    from store.models import CohortDecision, Interaction, InteractionKind, Person, Team

    seed = Seed(engine=engine, data_dir=folder)
    with Session(engine) as session:
        seed.people = {p.external_id: p.id for p in session.exec(select(Person)) if p.id}
        seed.teams = {t.slug: t.id for t in session.exec(select(Team)) if t.id}
        by_rep: dict[int, list[int]] = {}
        for i in session.exec(select(Interaction).order_by(col(Interaction.id))):
            assert i.id is not None
            if i.kind == InteractionKind.practice:
                seed.practice_id = i.id
            else:
                by_rep.setdefault(i.rep_id, []).append(i.id)
        names = {v: k for k, v in seed.people.items()}
        seed.calls = {names[rep]: ids for rep, ids in by_rep.items()}
        seed.pending_decisions = [
            d.id
            for d in session.exec(select(CohortDecision).where(CohortDecision.status == "pending"))
            if d.id is not None
        ]
    return seed


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Seed]:
    """The seeded organisation: a private copy on SQLite, the shared schema on PostgreSQL."""
    if request.param == "sqlite":
        copy = sqlite_copy(request.getfixturevalue("_sqlite_seed"), tmp_path / "data")
        yield copy
        copy.engine.dispose()
        return
    found: Seed = request.getfixturevalue("_postgres_seed")
    yield found


@pytest.fixture
def sqlite_seed(tmp_path: Path, _sqlite_seed: Path) -> Iterator[Seed]:
    """The seeded organisation on SQLite only, for tests about the app rather than the data."""
    copy = sqlite_copy(_sqlite_seed, tmp_path / "data")
    yield copy
    copy.engine.dispose()


def make_settings(data_dir: Path, **web: object) -> Settings:
    options: dict[str, object] = {"secret_key": SecretStr(SECRET), "max_failed_logins": 3}
    options.update(web)
    return Settings(data_dir=data_dir, web=WebSettings.model_validate(options))


def make_app(seed: Seed, **web: object) -> FastAPI:
    return create_app(
        engine=seed.engine,
        settings=make_settings(seed.data_dir, **web),
        rubrics=RUBRICS,
        clock=lambda: NOW,
    )


@pytest.fixture
def app(seed: Seed) -> FastAPI:
    return make_app(seed)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def login(client: TestClient, who: str, password: str = PASSWORD) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    token = csrf_of(page.text)
    response = client.post(
        "/login",
        data={"username": who, "password": password, "csrf_token": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/outbox").text)


def signed_in(app: FastAPI, who: str) -> tuple[TestClient, str]:
    client = TestClient(app)
    token = login(client, who)
    return client, token


def new_person(seed: Seed, *, team: str | None = None, access: str = "rep") -> str:
    """A person of their own for a test that changes them; returns the external id."""
    from store.db import session_scope
    from store.models import Access, Person
    from web.users import set_password

    external_id = f"p-{uuid.uuid4().hex[:10]}"
    with session_scope(seed.engine) as session:
        session.add(
            Person(
                external_id=external_id,
                name=external_id,
                access=Access(access),
                role="support",
                team_id=seed.teams[team] if team else None,
            )
        )
    set_password(seed.engine, external_id, PASSWORD, now=NOW)
    return external_id
