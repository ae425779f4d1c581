"""WebVTT with voice tags and SRT with speaker prefixes; each file is one call.

Caption cues are display chunks, not turns: consecutive cues of the same speaker are merged
into one turn that spans them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from ingest._read import HEADER_KEYS, FileContext, build_call, parse_clock
from ingest.calls import ParsedCall, ParsedTurn, turn_problem
from ingest.errors import InputError
from ingest.formats._lines import blocks, clean_text, lines_of, split_speaker
from store.models import Speaker

_TIMING = re.compile(r"^\s*(\S+)\s+-->\s+(\S+)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?(?:\s+([^>]*))?>")
_NOTE_PAIR = re.compile(r"""([A-Za-z_]+)=("[^"]*"|'[^']*'|\S+)""")


@dataclass(slots=True)
class _Segment:
    speaker: Speaker
    start: float
    end: float
    text: str


def header_facts(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """`key=value` pairs of a metadata note: (call facts, everything else for `meta`)."""
    facts: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for key, raw in _NOTE_PAIR.findall(text):
        value = shlex.split(raw)[0] if raw[:1] in "\"'" and len(raw) > 1 else raw
        target = HEADER_KEYS.get(key.lower())
        if target:
            facts[target] = value
        else:
            meta[key] = value
    return facts, meta


def _timing(line: str, where: str) -> tuple[float, float]:
    match = _TIMING.match(line)
    if not match:
        raise InputError(
            f"{where}: expected a timing line like `00:00:01.000 --> 00:00:04.000`", kind="parse"
        )
    try:
        return parse_clock(match.group(1)), parse_clock(match.group(2))
    except ValueError:
        raise InputError(
            f"{where}: cannot read the times in `{line.strip()}`", kind="parse"
        ) from None


def _merge(segments: list[_Segment]) -> list[ParsedTurn]:
    turns: list[ParsedTurn] = []
    for seg in segments:
        last = turns[-1] if turns else None
        if last is not None and last.speaker is seg.speaker:
            last.text = f"{last.text} {seg.text}"
            last.end_s = max(last.end_s or seg.end, seg.end)
            continue
        turns.append(
            ParsedTurn(speaker=seg.speaker, text=seg.text, start_s=seg.start, end_s=seg.end)
        )
    return turns


def _cue_segments(
    payload: list[str],
    ctx: FileContext,
    *,
    start: float,
    end: float,
    where: str,
    previous: Speaker | None,
    voice_tags: bool,
) -> list[_Segment]:
    """Split a cue's text into speaker segments; unlabelled text continues the last speaker."""
    pieces: list[tuple[str | None, str]] = []
    for raw in payload:
        parts = _VOICE.split(raw) if voice_tags and "<v" in raw else [raw]
        if len(parts) == 1:
            label, rest = split_speaker(clean_text(raw), ctx.speakers)
            pieces.append((label, rest))
            continue
        if clean_text(parts[0]):
            pieces.append((None, parts[0]))
        for i in range(1, len(parts), 2):
            pieces.append(((parts[i] or "").strip(), parts[i + 1]))
    segments: list[_Segment] = []
    current = previous
    for label, text in pieces:
        if label is not None:
            current = ctx.speaker(label, where)
        if current is None:
            raise InputError(
                f"{where}: the cue has no speaker; tag it `<v Agent>` or start it with `Agent:`",
                kind="unknown_speaker",
            )
        segment = _Segment(current, start, end, clean_text(text))
        if segments and segments[-1].speaker is current:
            segments[-1].text = f"{segments[-1].text} {segment.text}".strip()
        else:
            segments.append(segment)
    for segment in segments:
        problem = turn_problem(
            ParsedTurn(segment.speaker, segment.start, segment.end, segment.text), where
        )
        if problem:
            raise InputError(problem, kind="bad_turn")
    return segments


def parse_vtt(text: str, ctx: FileContext) -> ParsedCall:
    lines = lines_of(text)
    if not lines[0].lstrip("\ufeff").startswith("WEBVTT"):
        raise InputError("not a WebVTT file: the first line must be `WEBVTT`", kind="parse")
    voice_tags = "<v" in text
    facts: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    segments: list[_Segment] = []
    for first, block in blocks(lines, start=1):
        head = block[0].strip()
        if head.startswith("NOTE"):
            if not segments:
                found, extra = header_facts(" ".join(block)[4:])
                facts.update(found)
                meta.update(extra)
            continue
        if head.startswith(("STYLE", "REGION")):
            continue
        timing_at = 0 if "-->" in block[0] else 1
        where = f"cue at line {first}"
        if timing_at >= len(block) or "-->" not in block[timing_at]:
            raise InputError(
                f"line {first}: expected a cue timing line like `00:00:01.000 --> 00:00:04.000`",
                kind="parse",
                line=first,
            )
        start, end = _timing(block[timing_at], f"line {first + timing_at}")
        payload = block[timing_at + 1 :]
        if not payload:
            raise InputError(
                f"{where} has no text (is the file truncated?)", kind="bad_turn", line=first
            )
        previous = segments[-1].speaker if segments else None
        segments.extend(
            _cue_segments(
                payload,
                ctx,
                start=start,
                end=end,
                where=where,
                previous=previous,
                voice_tags=voice_tags,
            )
        )
    return build_call(
        ctx,
        facts=facts,
        turns=_merge(segments),
        source="vtt",
        meta=meta,
        whole_file=True,
        derive_id=True,
    )


def parse_srt(text: str, ctx: FileContext) -> ParsedCall:
    segments: list[_Segment] = []
    for first, block in blocks(lines_of(text)):
        head = block[0].strip()
        timing_at = 1 if head.isdigit() else 0
        if timing_at >= len(block) or "-->" not in block[timing_at]:
            problem = (
                "the subtitle has no timing line (is the file truncated?)"
                if timing_at >= len(block)
                else "expected a subtitle number, then a timing line like "
                "`00:00:01,000 --> 00:00:04,000`"
            )
            raise InputError(f"line {first}: {problem}", kind="parse", line=first)
        start, end = _timing(block[timing_at], f"line {first + timing_at}")
        payload = block[timing_at + 1 :]
        where = f"subtitle at line {first}"
        if not payload:
            raise InputError(
                f"{where} has no text (is the file truncated?)", kind="bad_turn", line=first
            )
        previous = segments[-1].speaker if segments else None
        segments.extend(
            _cue_segments(
                payload,
                ctx,
                start=start,
                end=end,
                where=where,
                previous=previous,
                voice_tags=False,
            )
        )
    return build_call(
        ctx, facts={}, turns=_merge(segments), source="srt", whole_file=True, derive_id=True
    )
