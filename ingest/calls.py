"""The parsed form of a call, shared by every format, the demo data and practice sessions."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from store.models import InteractionKind, Speaker

CHANNELS = ("phone", "chat", "email", "video")
TEAM_SLUG = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")

# Column widths in store.models; PostgreSQL enforces them, so check before inserting.
MAX_EXTERNAL_ID = 256
MAX_SOURCE = 64
MAX_REP_REF = 128
MAX_TEAM_SLUG = 64
SPEAKER_CODE = {speaker: speaker.value for speaker in Speaker}
"""Plain strings for speakers (cheaper than the enum's `.value` in hot loops)."""


@dataclass(slots=True)
class ParsedTurn:
    speaker: Speaker
    start_s: float | None
    """Seconds from the start of the call; None for formats without times (chat logs)."""
    end_s: float | None
    text: str


@dataclass(slots=True, kw_only=True)
class ParsedCall:
    """One call or session, ready to store with :func:`ingest.save_calls`.

    Attributes:
        external_id: The platform's id for the call; unique per `source`.
        rep: The rep's external id or e-mail, as in the organisation import.
        team: Team slug; None means the rep's own team.
        channel: `phone`, `chat`, `email` or `video`.
        started_at: Timezone-aware start time (stored in UTC).
        duration_s: Length in seconds; None means the end of the last turn.
        turns: The conversation, in order.
        meta: Anything else worth keeping (queue, platform fields, the file it came from).
        source: Where it came from: a file format, a platform (the mapping's name), `practice`.
        kind: `call` or `practice`.
    """

    external_id: str
    rep: str
    started_at: datetime
    turns: list[ParsedTurn]
    team: str | None = None
    channel: str = "phone"
    duration_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = "json"
    kind: InteractionKind = InteractionKind.call

    def content_hash(self) -> str:
        return content_hash(self.turns)

    def resolved_duration(self) -> float:
        if self.duration_s is not None:
            return self.duration_s
        ends = [t.end_s if t.end_s is not None else t.start_s for t in self.turns]
        return max((e for e in ends if e is not None), default=0.0)

    def problems(self, *, turns: bool = True) -> list[str]:
        """Everything that stops this call from being stored, as sentences naming the field.

        With `turns=False` only the call's own fields are checked (parsers check turns
        themselves, where they can name the line).
        """
        found: list[str] = []
        if not self.external_id.strip():
            found.append("the call id is empty")
        elif len(self.external_id) > MAX_EXTERNAL_ID:
            found.append(f"the call id is longer than {MAX_EXTERNAL_ID} characters")
        if not self.rep.strip():
            found.append("the rep is empty")
        elif len(self.rep) > MAX_REP_REF:
            found.append(f"the rep `{self.rep[:40]}...` is longer than {MAX_REP_REF} characters")
        if not self.source or len(self.source) > MAX_SOURCE:
            found.append(f"the source must be 1 to {MAX_SOURCE} characters")
        if self.team is not None and not (
            TEAM_SLUG.match(self.team) and len(self.team) <= MAX_TEAM_SLUG
        ):
            found.append(
                f"team `{self.team}` is not a slug (lowercase letters, digits, `-` and `_`)"
            )
        if self.channel not in CHANNELS:
            found.append(f"channel `{self.channel}` is not one of {', '.join(CHANNELS)}")
        if self.started_at.utcoffset() is None:
            found.append("`started_at` has no time zone")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s >= 0
        ):
            found.append(f"`duration_s` {self.duration_s} is not a positive number")
        if not self.turns:
            found.append("the call has no turns")
        if turns:
            for n, turn in enumerate(self.turns, 1):
                start, end, text = turn.start_s, turn.end_s, turn.text
                if (  # the same test as turn_problem's fast path, inlined for backfills
                    text
                    and not text.isspace()
                    and (start is None or 0 <= start < math.inf)
                    and (end is None or (0 <= end < math.inf and (start is None or end >= start)))
                ):
                    continue
                problem = turn_problem(turn, f"turn {n}")
                if problem:
                    found.append(problem)
        return found


def turn_problem(turn: ParsedTurn, label: str) -> str | None:
    """Why a turn cannot be stored (negative or reversed times, no text), or None."""
    start, end, text = turn.start_s, turn.end_s, turn.text
    if (
        text
        and not text.isspace()
        and (start is None or 0 <= start < math.inf)
        and (end is None or (0 <= end < math.inf and (start is None or end >= start)))
    ):
        return None
    if not text.strip():
        return f"{label} has no text"
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{label} has a negative or invalid {name} time ({value})"
    return f"{label} ends ({end:g} s) before it starts ({start:g} s)"


def normalise_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(turns: Iterable[ParsedTurn]) -> str:
    """sha256 over speaker and whitespace-normalised text of every turn, in order.

    Times are left out on purpose: the same call exported by two tools, or under another
    file name, hashes the same.
    """
    normalize = unicodedata.normalize
    parts: list[str] = []
    for turn in turns:
        parts.append(SPEAKER_CODE[turn.speaker])
        parts.append("\x1f")
        parts.append(" ".join(normalize("NFC", turn.text).split()))
        parts.append("\x1e")
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is read as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
