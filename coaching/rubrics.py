"""Rubrics as the engine reads them: by the version every score pins, and the moment behind
a level."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from config.rubric import Criterion, Rubric
from store.models import RubricVersion


class RubricCache:
    """Rubrics by version, read once from `RubricVersion` (or given up front)."""

    def __init__(self, engine: Engine, rubrics: list[Rubric] | None = None) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._by_version: dict[str, Rubric | None] = {r.version: r for r in rubrics or []}

    def get(self, version: str) -> Rubric | None:
        """The rubric with that version, or None when no such version is stored."""
        with self._lock:
            if version in self._by_version:
                return self._by_version[version]
        with Session(self._engine) as session:
            row = session.get(RubricVersion, version)
        rubric = rubric_from_content(row.content) if row is not None else None
        with self._lock:
            self._by_version[version] = rubric
        return rubric


def rubric_from_content(content: dict[str, Any]) -> Rubric:
    """Rebuild a rubric from its stored JSON, where the level keys became strings."""
    data = dict(content)
    criteria = []
    for criterion in data.get("criteria", []):
        criterion = dict(criterion)
        levels = criterion.get("levels", {})
        criterion["levels"] = {int(k): v for k, v in levels.items()}
        criteria.append(criterion)
    data["criteria"] = criteria
    return Rubric.model_validate(data)


def criterion_names(engine: Engine) -> dict[str, str]:
    """Criterion id to name across every stored rubric version (newest wins)."""
    with Session(engine) as session:
        rows = session.exec(select(RubricVersion).order_by(col(RubricVersion.created_at))).all()
    names: dict[str, str] = {}
    for row in rows:
        for criterion in row.content.get("criteria", []):
            if isinstance(criterion, dict) and "id" in criterion:
                names[str(criterion["id"])] = str(criterion.get("name", criterion["id"]))
    return names


def _has_evidence(check: dict[str, Any]) -> bool:
    return bool(check.get("quote")) or check.get("turn") is not None


def moment_for(
    criterion: Criterion | None, level: int | None, checks: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The transcript moment behind a level: the evidence of the check that decided it.

    Prefers an observed check of the awarded level (for level 1, the poor behaviour seen),
    then any observed check with evidence, then any check with evidence.
    """
    usable = [c for c in checks if isinstance(c, dict) and _has_evidence(c)]
    if not usable:
        return None
    preferred: list[str] = []
    if criterion is not None and level in (1, 2, 3):
        preferred = [check.id for check in criterion.levels[level].checks]  # type: ignore[index]
    ranked = (
        [c for c in usable if c.get("id") in preferred and c.get("observed")]
        + [c for c in usable if c.get("observed")]
        + usable
    )
    best = ranked[0]
    return {
        "check": best.get("id"),
        "observed": bool(best.get("observed")),
        "turn": best.get("turn"),
        "start_s": best.get("start_s"),
        "quote": best.get("quote"),
    }


def good_looks_like(criterion: Criterion | None) -> dict[str, Any] | None:
    """The level-3 anchor and its example language."""
    if criterion is None:
        return None
    top = criterion.levels[3]
    return {"anchor": top.anchor.strip(), "examples": [e.strip() for e in top.examples[:2]]}
