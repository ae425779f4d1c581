"""coachloop's own JSON and JSONL call format, and other platforms' JSON through a mapping."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from ingest._read import FileContext, build_call, parse_seconds
from ingest.calls import ParsedCall, ParsedTurn, turn_problem
from ingest.errors import InputError
from ingest.formats._lines import lines_of

CALL_FIELDS = (
    "external_id",
    "rep",
    "team",
    "channel",
    "started_at",
    "duration_s",
    "turns",
    "meta",
)
TURN_FIELDS = ("speaker", "start_s", "end_s", "text")
_CALL_FIELD_SET = frozenset(CALL_FIELDS)
_TURN_FIELD_SET = frozenset(TURN_FIELDS)
_MISSING = object()

Item = ParsedCall | InputError


def _join(*parts: str) -> str:
    return ": ".join(p for p in parts if p)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        return float(value)
    raise ValueError(value)


def native_call(obj: Any, ctx: FileContext, *, where: str, whole_file: bool) -> ParsedCall:
    """One call object of coachloop's own format, checked field by field."""
    if not isinstance(obj, dict):
        raise InputError(
            _join(where, f"expected a call object, found {type(obj).__name__}"), kind="parse"
        )
    ident = obj.get("external_id")
    call_where = _join(where, f"call `{ident}`" if ident is not None else "")
    raw_turns = obj.get("turns", _MISSING)
    if raw_turns is _MISSING:
        raise InputError(
            _join(
                call_where,
                "missing required field `turns` (if this is another platform's export, "
                "describe it in a mapping file and pass --mapping FILE)",
            ),
            kind="missing_field",
        )
    unknown = obj.keys() - _CALL_FIELD_SET
    if unknown:
        raise InputError(
            _join(
                where,
                f"unknown field `{sorted(unknown)[0]}`; a call has {', '.join(CALL_FIELDS)} "
                "(put anything else under `meta`)",
            ),
            kind="bad_field",
        )
    if not isinstance(raw_turns, list):
        raise InputError(_join(call_where, "`turns` must be a list"), kind="bad_field")
    turns: list[ParsedTurn] = []
    for n, raw in enumerate(raw_turns, 1):
        turns.append(_native_turn(raw, ctx, call_where, n))
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise InputError(_join(call_where, "`meta` must be an object"), kind="bad_field")
    facts = {
        "external_id": None if ident is None else str(ident),
        "rep": obj.get("rep"),
        "team": obj.get("team"),
        "channel": obj.get("channel"),
        "started_at": obj.get("started_at"),
        "duration_s": obj.get("duration_s"),
    }
    return build_call(
        ctx,
        facts=facts,
        turns=turns,
        source="json",
        meta=meta,
        whole_file=whole_file,
        where=where,
    )


def _native_turn(raw: Any, ctx: FileContext, call_where: str, n: int) -> ParsedTurn:
    # the hot loop of a backfill: the happy path builds no strings
    if type(raw) is dict and len(raw) <= 4 and raw.keys() <= _TURN_FIELD_SET:
        label = raw.get("speaker")
        text = raw.get("text")
        start = raw.get("start_s")
        end = raw.get("end_s")
        if (
            type(label) is str
            and type(text) is str
            and (start is None or type(start) is float or type(start) is int)
            and (end is None or type(end) is float or type(end) is int)
        ):
            speaker = ctx.speakers.resolve(label)
            if (
                speaker is not None
                and text
                and not text.isspace()
                and (start is None or 0 <= start < math.inf)
                and (end is None or (0 <= end < math.inf and (start is None or end >= start)))
            ):
                return ParsedTurn(
                    speaker,
                    None if start is None else float(start),
                    None if end is None else float(end),
                    text,
                )
    return _explain_turn(raw, ctx, _join(call_where, f"turn {n}"))


def _explain_turn(raw: Any, ctx: FileContext, where: str) -> ParsedTurn:
    """The slow path: say exactly what is wrong with a turn."""
    if not isinstance(raw, dict):
        raise InputError(f"{where}: expected a turn object", kind="bad_turn")
    if not raw.keys() <= _TURN_FIELD_SET:
        extra = sorted(raw.keys() - _TURN_FIELD_SET)
        raise InputError(
            f"{where}: unknown field `{extra[0]}`; a turn has {', '.join(TURN_FIELDS)}",
            kind="bad_field",
        )
    label = raw.get("speaker")
    text = raw.get("text")
    for name, value in (("speaker", label), ("text", text)):
        if value is None:
            raise InputError(f"{where}: missing required field `{name}`", kind="missing_field")
        if not isinstance(value, str):
            raise InputError(f"{where}: `{name}` must be a string", kind="bad_turn")
    assert isinstance(label, str) and isinstance(text, str)
    try:
        start = _number(raw.get("start_s"))
        end = _number(raw.get("end_s"))
    except ValueError:
        raise InputError(
            f"{where}: `start_s` and `end_s` must be numbers", kind="bad_turn"
        ) from None
    turn = ParsedTurn(speaker=ctx.speaker(label, where), text=text, start_s=start, end_s=end)
    problem = turn_problem(turn, where)
    if problem:
        raise InputError(problem, kind="bad_turn")
    return turn


def _looks_native(obj: Any) -> bool:
    return isinstance(obj, dict) and "turns" in obj


def _syntax_error(exc: json.JSONDecodeError, text: str, where: str = "") -> InputError:
    ends_early = exc.pos >= len(text.rstrip())
    hint = " (the file ends early; is it truncated?)" if ends_early else ""
    return InputError(
        _join(where, f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"),
        kind="parse",
        line=exc.lineno,
    )


def _array_elements(text: str) -> list[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    end = len(text)

    def skip(i: int) -> int:
        while i < end and text[i] in " \t\r\n":
            i += 1
        return i

    found: list[tuple[int, Any]] = []
    i = skip(0) + 1
    line, counted = 1, 0
    i = skip(i)
    if i < end and text[i] == "]":
        return found
    while True:
        line += text.count("\n", counted, i)
        counted = i
        obj, i = decoder.raw_decode(text, i)
        found.append((line, obj))
        i = skip(i)
        if i < end and text[i] == ",":
            i = skip(i + 1)
            continue
        if i < end and text[i] == "]":
            if skip(i + 1) < end:
                raise json.JSONDecodeError("Extra data", text, skip(i + 1))
            return found
        raise json.JSONDecodeError("Expecting ',' delimiter", text, i)


def parse_json(text: str, ctx: FileContext) -> Iterator[Item]:
    """A `.json` file: one call, a list of calls, JSON lines, or a mapped export."""
    first = text.lstrip()[:1]
    if first == "[":
        try:
            elements = _array_elements(text)
        except json.JSONDecodeError as exc:
            raise _syntax_error(exc, text) from None
        if not elements:
            raise InputError("the file holds an empty list", kind="empty")
        if ctx.mapping is not None and not _looks_native(elements[0][1]):
            yield from export_calls([e for _, e in elements], ctx, where="", whole_file=True)
            return
        whole = len(elements) == 1
        for line, element in elements:
            try:
                yield native_call(
                    element, ctx, where="" if whole else f"line {line}", whole_file=whole
                )
            except InputError as exc:
                exc.line = exc.line or line
                yield exc
        return
    if first != "{":
        raise InputError("not JSON: a call file starts with `{` or `[`", kind="parse")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and "\n" in text[: exc.pos]:
            yield from parse_jsonl(text, ctx)
            return
        raise _syntax_error(exc, text) from None
    if ctx.mapping is not None and not _looks_native(doc):
        yield from export_calls(doc, ctx, where="", whole_file=True)
        return
    yield native_call(doc, ctx, where="", whole_file=True)


def parse_jsonl(text: str, ctx: FileContext) -> Iterator[Item]:
    """One call per line; a bad line is reported with its number and the rest go through."""
    for n, line in enumerate(lines_of(text), 1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            ends_early = exc.pos >= len(line.rstrip())
            hint = " (the line ends early; is it truncated?)" if ends_early else ""
            yield InputError(
                f"{where}: not valid JSON at column {exc.colno}: {exc.msg}{hint}",
                kind="parse",
                line=n,
            )
            continue
        try:
            if ctx.mapping is not None and not _looks_native(obj):
                for item in export_calls(obj, ctx, where=where, whole_file=False):
                    if isinstance(item, InputError):
                        item.line = n
                    yield item
            else:
                yield native_call(obj, ctx, where=where, whole_file=False)
        except InputError as exc:
            exc.line = n
            yield exc


# -- other platforms' exports ---------------------------------------------------------------


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path (`transcript.segments.0.text`), or None."""
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
        if obj is None:
            return None
    return obj


def export_calls(doc: Any, ctx: FileContext, *, where: str, whole_file: bool) -> Iterator[Item]:
    mapping = ctx.mapping
    assert mapping is not None
    if mapping.calls is None:
        calls: list[tuple[str, Any]] = [(where, doc)]
    else:
        found = doc if mapping.calls == "" else get_path(doc, mapping.calls)
        if not isinstance(found, list):
            raise InputError(
                _join(where, f"no list of calls at `{mapping.calls}` (mapping `{mapping.name}`)"),
                kind="missing_field",
            )
        calls = [(_join(where, f"call {i}"), c) for i, c in enumerate(found, 1)]
        whole_file = whole_file and len(calls) == 1
    for call_where, call in calls:
        try:
            yield export_call(call, ctx, where=call_where, whole_file=whole_file)
        except InputError as exc:
            yield exc


def export_call(call: Any, ctx: FileContext, *, where: str, whole_file: bool) -> ParsedCall:
    mapping = ctx.mapping
    assert mapping is not None
    fields = mapping.fields
    utterances = call if mapping.utterances == "" else get_path(call, mapping.utterances)
    if not isinstance(utterances, list):
        raise InputError(
            _join(
                where,
                f"no utterance list at `{mapping.utterances or '(top level)'}` "
                f"(mapping `{mapping.name}`)",
            ),
            kind="missing_field",
        )
    per_second = mapping.units_per_second
    turns: list[ParsedTurn] = []
    for n, utterance in enumerate(utterances, 1):
        turn_where = _join(where, f"utterance {n}")
        if not isinstance(utterance, dict):
            raise InputError(f"{turn_where}: expected an object", kind="bad_turn")
        label = get_path(utterance, fields.speaker)
        text = get_path(utterance, fields.text)
        for name, value in ((fields.speaker, label), (fields.text, text)):
            if value is None:
                raise InputError(
                    f"{turn_where}: missing required field `{name}`", kind="missing_field"
                )
        if not isinstance(text, str):
            raise InputError(f"{turn_where}: `{fields.text}` must be a string", kind="bad_turn")
        raw_start = get_path(utterance, fields.start) if fields.start else None
        raw_end = get_path(utterance, fields.end) if fields.end else None
        try:
            start = parse_seconds(raw_start, per_second)
            end = parse_seconds(raw_end, per_second)
        except ValueError:
            raise InputError(
                f"{turn_where}: times `{raw_start}` / `{raw_end}` are not numbers", kind="bad_turn"
            ) from None
        speaker = ctx.speaker(str(label), turn_where)
        turn = ParsedTurn(speaker=speaker, text=text, start_s=start, end_s=end)
        problem = turn_problem(turn, turn_where)
        if problem:
            raise InputError(problem, kind="bad_turn")
        turns.append(turn)

    def field(path: str | None) -> Any:
        return get_path(call, path) if path and isinstance(call, dict) else None

    raw_duration = field(fields.duration)
    try:
        duration = parse_seconds(raw_duration, per_second)
    except ValueError:
        raise InputError(
            _join(where, f"`{fields.duration}` value `{raw_duration}` is not a number"),
            kind="bad_field",
        ) from None
    facts = {
        "external_id": None if field(fields.call_id) is None else str(field(fields.call_id)),
        "rep": field(fields.rep),
        "team": field(fields.team),
        "channel": field(fields.channel),
        "started_at": field(fields.started_at),
        "duration_s": duration,
    }
    return build_call(
        ctx,
        facts=facts,
        turns=turns,
        source=mapping.name,
        meta={"mapping": mapping.name},
        whole_file=whole_file,
        derive_id=whole_file,
        where=where,
        id_field=fields.call_id or "call_id",
    )
