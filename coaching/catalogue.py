"""What the engine needs to know about practice scenarios: which role and criteria each one
targets, and how hard it is.

The scenario library lives in `scenarios/`; any object with a `scenarios()` method returning
summaries can serve as the catalogue. `load_catalogue` reads summaries straight from scenario
YAML files, taking only the fields it needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import yaml

from coaching.errors import CatalogueError

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")


@dataclass(frozen=True, slots=True)
class ScenarioSummary:
    slug: str
    role: str
    criteria: tuple[str, ...]
    """Rubric criterion ids the scenario is built to exercise."""
    difficulty: Difficulty = "medium"
    title: str = ""

    @property
    def rank(self) -> int:
        return DIFFICULTIES.index(self.difficulty)


@runtime_checkable
class ScenarioCatalogue(Protocol):
    def scenarios(self) -> Sequence[ScenarioSummary]:
        """Every scenario that can be assigned."""
        ...


class StaticCatalogue:
    """A fixed list of scenario summaries."""

    def __init__(self, scenarios: Iterable[ScenarioSummary] = ()) -> None:
        self._scenarios = tuple(scenarios)

    def scenarios(self) -> Sequence[ScenarioSummary]:
        return self._scenarios


def _criteria_of(data: dict[str, Any]) -> tuple[str, ...]:
    raw = data.get("criteria", data.get("evaluation_criteria", []))
    ids: list[str] = []
    for item in raw or []:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict):
            value = item.get("criterion", item.get("criterion_id", item.get("id")))
            if isinstance(value, str):
                ids.append(value)
    return tuple(ids)


def parse_summary(data: object, *, source: Path) -> ScenarioSummary:
    if not isinstance(data, dict):
        raise CatalogueError(f"{source}: a scenario file must hold a mapping")
    slug = data.get("slug") or source.stem
    role = data.get("role")
    if not isinstance(role, str) or not role:
        raise CatalogueError(f"{source}: `role` is missing; name the rep role it trains")
    criteria = _criteria_of(data)
    if not criteria:
        raise CatalogueError(f"{source}: no criteria; list the rubric criterion ids it targets")
    difficulty = data.get("difficulty", "medium")
    if difficulty not in DIFFICULTIES:
        raise CatalogueError(
            f"{source}: difficulty `{difficulty}` is not one of {', '.join(DIFFICULTIES)}"
        )
    title = data.get("title") or data.get("name") or ""
    return ScenarioSummary(
        slug=str(slug), role=role, criteria=criteria, difficulty=difficulty, title=str(title)
    )


def load_catalogue(directory: Path) -> StaticCatalogue:
    """Read every `*.yaml` scenario under `directory`; a missing folder is an empty catalogue."""
    if not directory.is_dir():
        return StaticCatalogue()
    summaries = []
    for path in sorted(directory.rglob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise CatalogueError(f"{path}: cannot read the scenario: {exc}") from None
        if isinstance(data, dict) and "role" not in data and not _criteria_of(data):
            continue  # a company profile or persona file beside the scenarios
        summaries.append(parse_summary(data, source=path))
    return StaticCatalogue(summaries)
