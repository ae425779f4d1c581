"""Manager feedback quality: notes a manager leaves on a coaching item, scored against a small
built-in rubric.

A useful note names a behaviour (what the rep did or did not do, not a trait), cites a
moment (a time, a turn or the words said) and gives a next step. Each is decided by
deterministic rules; naming a behaviour also counts when the note shares enough words with a
rubric criterion's behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from config.rubric import Criterion
from store.db import session_scope
from store.models import CoachingNote

_WORD = re.compile(r"[a-z']+")
_STOP = frozenset(
    "a an and are as at be before by for from has have i in is it its of on or that the their "
    "them then this to was were what when which who will with you your".split()
)
_TRAITS = re.compile(
    r"\b(more |less )?(empathetic|friendly|positive attitude|good listener|confident|"
    r"professional|rude|lazy|attitude|personality|nice|caring)\b"
)
_YOU_DID = re.compile(
    r"\byou (did ?n[o']t |didn't |never |also |then |just |went |immediately )?"
    r"(ask|asked|restate|restated|repeat|repeated|confirm|confirmed|check|checked|say|said|"
    r"tell|told|explain|explained|acknowledge|acknowledged|apologise|apologised|apologize|"
    r"apologized|verify|verified|offer|offered|summarise|summarised|summarize|summarized|"
    r"name|named|give|gave|jump|jumped|move|moved|went|read|quote|quoted|interrupt|"
    r"interrupted|skip|skipped|close|closed|end|ended|open|opened|start|started|set|agree|"
    r"agreed|recommend|recommended|pitch|pitched|listen|listened|go|put|took|take)\b"
)
_MOMENT = re.compile(
    r"(\b\d{1,2}:\d{2}\b|\bturn \d+\b|\bminute \d+\b|\b(call|interaction) #?\d+\b|"
    r"\bwhen (the|your) (customer|caller|client) (said|asked|mentioned|told)|"
    r"\bon (the|your|this|that) call (with|on|at|yesterday|this|last|about)|"
    r"\bat the (start|end|beginning|close) of the call|[\"\u201c][^\"\u201d]{8,}[\"\u201d])"
)
_NEXT_STEP = re.compile(
    r"\b(next time|try (to |saying |asking |starting )?|instead|going forward|from now on|"
    r"practi[cs]e|i'?d like you to|let'?s|aim to|start by|make sure|before you|"
    r"by (monday|tuesday|wednesday|thursday|friday|next week|the end of)|"
    r"on your next (call|shift)|book|schedule|work on)"
)
BEHAVIOUR_OVERLAP = 2
"""Content words a note must share with a criterion's behaviour to count as naming it."""


@dataclass(frozen=True, slots=True)
class NoteQuality:
    names_behaviour: bool
    cites_moment: bool
    gives_next_step: bool
    trait_words: bool
    matched_criterion: str | None

    @property
    def score(self) -> int:
        return int(self.names_behaviour) + int(self.cites_moment) + int(self.gives_next_step)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "score": self.score}


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def score_note(text: str, criteria: Sequence[Criterion] = ()) -> NoteQuality:
    """Score a note against the built-in note rubric (0-3, one point per element)."""
    lowered = " ".join(text.lower().split())
    words = {_stem(w) for w in _content_words(lowered)}
    matched = None
    best = 0
    for criterion in criteria:
        target = {_stem(w) for w in _content_words(f"{criterion.name} {criterion.behaviour}")}
        overlap = len(words & target)
        if overlap >= BEHAVIOUR_OVERLAP and overlap > best:
            matched, best = criterion.id, overlap
    traits = bool(_TRAITS.search(lowered))
    behaviour = bool(_YOU_DID.search(lowered)) or matched is not None
    return NoteQuality(
        names_behaviour=behaviour,
        cites_moment=bool(_MOMENT.search(text.lower())),
        gives_next_step=bool(_NEXT_STEP.search(lowered)),
        trait_words=traits,
        matched_criterion=matched,
    )


def add_note(
    engine: Engine,
    *,
    author_id: int,
    rep_id: int,
    text: str,
    now: datetime,
    criteria: Sequence[Criterion] = (),
    trigger_id: int | None = None,
    assignment_id: int | None = None,
    interaction_id: int | None = None,
) -> CoachingNote:
    """Store a manager's note with its quality score."""
    if not text.strip():
        raise ValueError("The note is empty; write what the rep did, when, and what to try next")
    quality = score_note(text, criteria)
    with session_scope(engine) as session:
        note = CoachingNote(
            author_id=author_id,
            rep_id=rep_id,
            trigger_id=trigger_id,
            assignment_id=assignment_id,
            interaction_id=interaction_id,
            text=text,
            quality=quality.score,
            quality_checks=quality.as_dict(),
            created_at=now,
        )
        session.add(note)
        return note
