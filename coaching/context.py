"""The collaborators every pipeline step receives: the database, the rules, the scenario
catalogue and the clock. The graph hands them to its nodes as its run-time context; a job
queue builds one per worker and calls the same step functions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from coaching.catalogue import ScenarioCatalogue, StaticCatalogue
from coaching.rubrics import RubricCache
from config.coaching import CoachingRules
from config.rubric import Rubric
from store.models import utcnow


@dataclass(frozen=True)
class CoachingContext:
    engine: Engine
    rules: CoachingRules = field(default_factory=CoachingRules)
    catalogue: ScenarioCatalogue = field(default_factory=StaticCatalogue)
    clock: Callable[[], datetime] = utcnow
    rubrics: RubricCache | None = None

    def __post_init__(self) -> None:
        if self.rubrics is None:
            object.__setattr__(self, "rubrics", RubricCache(self.engine))

    def rubric(self, version: str) -> Rubric | None:
        assert self.rubrics is not None
        return self.rubrics.get(version)

    def now(self) -> datetime:
        return self.clock()
