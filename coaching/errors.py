"""Errors of the coaching engine; each message names the problem and what to do."""

from __future__ import annotations

from collections.abc import Iterable


class CoachingError(Exception):
    """Base class for coaching failures."""


class TeamNotFoundError(CoachingError):
    def __init__(self, slug: str, available: Iterable[str]) -> None:
        names = ", ".join(sorted(available)) or "none"
        super().__init__(f"No team `{slug}`; teams: {names}")
        self.slug = slug


class ApprovalError(CoachingError):
    """A cohort decision that cannot be approved or declined (unknown, or already decided)."""


class CatalogueError(CoachingError):
    """A scenario file that cannot be read as a scenario summary."""


class OutcomeImportError(CoachingError):
    """An outcomes file that cannot be read at all (a bad row is reported, not raised)."""
