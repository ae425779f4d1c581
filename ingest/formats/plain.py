"""Plain-text transcripts: `Agent: ...` lines, optionally stamped `[00:01:23]`; one call.

Leading `# key: value` lines carry the call's id, rep, team, channel and start time. A line
without a speaker label continues the turn above it.
"""

from __future__ import annotations

import re
from typing import Any

from ingest._read import HEADER_KEYS, FileContext, build_call, parse_clock
from ingest.calls import ParsedCall, ParsedTurn, turn_problem
from ingest.errors import InputError
from ingest.formats._lines import lines_of, split_speaker

_STAMP = re.compile(
    r"^\s*[\[(]?((?:\d+:)?\d{1,2}:\d{2}(?:[.,]\d{1,3})?)[\])]?\s*(?:[-\u2013|]\s*)?"
)
_HEADER = re.compile(r"^#\s*([A-Za-z_]+)\s*[:=]\s*(.*?)\s*$")


def parse_txt(text: str, ctx: FileContext) -> ParsedCall:
    facts: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    turns: list[ParsedTurn] = []
    first_lines: list[int] = []
    for n, line in enumerate(lines_of(text), 1):
        if not line.strip():
            continue
        if not turns and line.lstrip().startswith("#"):
            header = _HEADER.match(line.strip())
            if header:
                key, value = header.group(1), header.group(2)
                target = HEADER_KEYS.get(key.lower())
                if target:
                    facts[target] = value
                else:
                    meta[key] = value
            continue
        start: float | None = None
        stamp = _STAMP.match(line)
        label, rest = split_speaker(line[stamp.end() :] if stamp else line, ctx.speakers)
        if stamp and label is not None:
            start = parse_clock(stamp.group(1))
        if label is None:
            if not turns:
                raise InputError(
                    f"line {n}: no speaker label; start turn lines with `Agent:` or "
                    "`Customer:` (optionally after a `[00:01:23]` time)",
                    kind="unknown_speaker",
                    line=n,
                )
            turns[-1].text = f"{turns[-1].text} {line.strip()}"
            continue
        speaker = ctx.speaker(label, f"line {n}")
        turns.append(ParsedTurn(speaker=speaker, start_s=start, end_s=None, text=rest.strip()))
        first_lines.append(n)
    for turn, n in zip(turns, first_lines, strict=True):
        problem = turn_problem(turn, f"turn at line {n}")
        if problem:
            raise InputError(problem, kind="bad_turn", line=n)
    return build_call(
        ctx, facts=facts, turns=turns, source="txt", meta=meta, whole_file=True, derive_id=True
    )
