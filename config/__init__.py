"""Settings and the data schemas every other package reads: rubrics, coaching rules, company."""

from config.rubric import (
    Check,
    Criterion,
    LevelSpec,
    Rubric,
    RubricError,
    RubricLibrary,
    load_rubric,
)
from config.settings import Settings, get_settings

__all__ = [
    "Check",
    "Criterion",
    "LevelSpec",
    "Rubric",
    "RubricError",
    "RubricLibrary",
    "Settings",
    "get_settings",
    "load_rubric",
]
