"""What can go wrong while reading calls, and how it is reported."""

from __future__ import annotations


class IngestError(Exception):
    """Base of the ingestion errors."""


class MappingError(IngestError):
    """A mapping file cannot be read or does not describe an export; raised before any work."""


class InputError(IngestError):
    """One file or one record cannot be used; the batch sets it aside and goes on.

    `kind` is a short code for summaries and logs (`encoding`, `empty`, `too_large`, `parse`,
    `missing_field`, `bad_field`, `bad_turn`, `unknown_speaker`, `unsupported`, ...).
    """

    def __init__(self, reason: str, *, kind: str = "parse", line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.line = line
