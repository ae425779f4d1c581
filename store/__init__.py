"""Tables, engine, sessions and migrations."""

from store.db import DatabaseError, make_engine, migrate, session_scope
from store.models import (
    Access,
    Evaluation,
    HumanRating,
    Interaction,
    InteractionKind,
    Person,
    RejectedFile,
    RubricVersion,
    Score,
    Speaker,
    Team,
    TeamManager,
    Turn,
    utcnow,
)

__all__ = [
    "Access",
    "DatabaseError",
    "Evaluation",
    "HumanRating",
    "Interaction",
    "InteractionKind",
    "Person",
    "RejectedFile",
    "RubricVersion",
    "Score",
    "Speaker",
    "Team",
    "TeamManager",
    "Turn",
    "make_engine",
    "migrate",
    "session_scope",
    "utcnow",
]
