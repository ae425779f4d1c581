"""Fixtures for the ingestion tests: a runner over `ingest_paths` and a reader of what it stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from config.settings import IngestSettings
from ingest import IngestReport, ingest_paths
from store.models import Interaction, Person, RejectedFile, Turn

Stored = list[tuple[Interaction, list[Turn]]]


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """Write a file under `tmp_path/in/` (text as UTF-8) and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., IngestReport]:
    """`run(engine, *paths, settings=None, **kwargs)`: ingest with `data_dir=tmp_path/data`."""

    def _run(
        engine: Engine, *paths: Path, settings: IngestSettings | None = None, **kwargs: Any
    ) -> IngestReport:
        return ingest_paths(
            engine,
            list(paths),
            settings=settings or IngestSettings(),
            data_dir=tmp_path / "data",
            **kwargs,
        )

    return _run


@pytest.fixture
def stored() -> Callable[[Engine], Stored]:
    """Every stored interaction with its turns, in id order."""

    def _stored(engine: Engine) -> Stored:
        with Session(engine) as session:
            calls = session.exec(select(Interaction).order_by(Interaction.id)).all()
            found: Stored = []
            for call in calls:
                turns = session.exec(
                    select(Turn).where(Turn.interaction_id == call.id).order_by(Turn.idx)
                ).all()
                found.append((call, list(turns)))
            return found

    return _stored


@pytest.fixture
def people() -> Callable[[Engine], list[Person]]:
    def _people(engine: Engine) -> list[Person]:
        with Session(engine) as session:
            return list(session.exec(select(Person).order_by(Person.id)).all())

    return _people


@pytest.fixture
def rejected_rows() -> Callable[[Engine], list[RejectedFile]]:
    def _rows(engine: Engine) -> list[RejectedFile]:
        with Session(engine) as session:
            return list(session.exec(select(RejectedFile).order_by(RejectedFile.id)).all())

    return _rows
