"""CSV (or TSV) with one row per turn; rows of one call share its call id.

Default columns: call_id, rep, started_at, speaker, start, end, text (plus optional team,
channel, duration). A mapping with `format: csv` renames them. A bad row sets its call aside;
the other calls of the file go through.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ingest._read import FileContext, build_call, parse_seconds
from ingest.calls import ParsedCall, ParsedTurn, turn_problem
from ingest.errors import InputError
from ingest.mapping import FieldNames

Item = ParsedCall | InputError
_FACT_FIELDS = (("rep", "rep"), ("team", "team"), ("channel", "channel"))


@dataclass(slots=True)
class _Call:
    first_line: int
    facts: dict[str, Any] = field(default_factory=dict)
    turns: list[ParsedTurn] = field(default_factory=list)
    problem: InputError | None = None


def _delimiter(header_line: str, tab: bool) -> str:
    if tab:
        return "\t"
    counts = {d: header_line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _duration(raw: str, per_second: float, where: str) -> float | None:
    try:
        return parse_seconds(raw, per_second)
    except ValueError:
        raise InputError(f"{where}: duration `{raw}` is not a number", kind="bad_field") from None


def parse_csv(text: str, ctx: FileContext, *, tab: bool = False) -> Iterator[Item]:
    mapping = ctx.mapping if ctx.mapping is not None and ctx.mapping.format == "csv" else None
    names = mapping.fields if mapping else FieldNames()
    per_second = mapping.units_per_second if mapping else 1.0
    source = mapping.name if mapping else "csv"
    defaults = ctx.mapping.defaults if ctx.mapping else None

    header_line = text.lstrip("\ufeff").split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(header_line, tab), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        raise InputError("the CSV has no header row", kind="parse") from None
    columns = {name.strip().casefold(): i for i, name in enumerate(header)}

    def column(name: str | None) -> int | None:
        return None if name is None else columns.get(name.casefold())

    where_names = "a mapping with `format: csv` and `fields:`"
    for required in ("call_id", "speaker", "text"):
        if column(getattr(names, required)) is None:
            raise InputError(
                f"the CSV has no `{getattr(names, required)}` column (columns: "
                f"{', '.join(header)}); name it in {where_names}",
                kind="missing_field",
            )
    fallback = {
        "rep": ctx.overrides.rep or (defaults.rep if defaults else None),
        "started_at": defaults.started_at if defaults else None,
    }
    for required in ("rep", "started_at"):
        if column(getattr(names, required)) is None and fallback[required] is None:
            hint = " or pass --rep" if required == "rep" else ""
            raise InputError(
                f"the CSV has no `{getattr(names, required)}` column (columns: "
                f"{', '.join(header)}); name it in {where_names}{hint}",
                kind="missing_field",
            )
    id_col = column(names.call_id)
    speaker_col = column(names.speaker)
    text_col = column(names.text)
    start_col = column(names.start)
    end_col = column(names.end)
    assert id_col is not None and speaker_col is not None and text_col is not None
    fact_cols = [(key, column(getattr(names, attr))) for key, attr in _FACT_FIELDS]
    fact_cols += [
        ("started_at", column(names.started_at)),
        ("duration_s", column(names.duration)),
    ]
    width = len(header)

    calls: dict[str, _Call] = {}
    loose: list[InputError] = []
    line = reader.line_num
    try:
        for row in reader:
            first, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            call_id = row[id_col].strip() if id_col < len(row) else ""
            if not call_id:
                loose.append(
                    InputError(
                        f"line {first}: missing required field `{names.call_id}`",
                        kind="missing_field",
                        line=first,
                    )
                )
                continue
            call = calls.get(call_id)
            if call is None:
                call = calls[call_id] = _Call(first_line=first)
            if call.problem is not None:
                continue
            where = f"line {first}: call `{call_id}`"
            try:
                if len(row) < width:
                    raise InputError(
                        f"{where}: the row has {len(row)} fields, the header {width} "
                        "(is the file truncated?)",
                        kind="parse",
                    )
                for key, col in fact_cols:
                    if col is not None and key not in call.facts and row[col].strip():
                        call.facts[key] = row[col].strip()
                        if key == "duration_s":
                            call.facts[key] = _duration(row[col], per_second, where)
                label = row[speaker_col]
                speaker = ctx.speaker(label, where)
                try:
                    start = (
                        parse_seconds(row[start_col], per_second) if start_col is not None else None
                    )
                    end = parse_seconds(row[end_col], per_second) if end_col is not None else None
                except ValueError:
                    raise InputError(
                        f"{where}: start/end `{row[start_col] if start_col is not None else ''}`"
                        f" / `{row[end_col] if end_col is not None else ''}` are not times",
                        kind="bad_turn",
                    ) from None
                turn = ParsedTurn(
                    speaker=speaker, text=row[text_col].strip(), start_s=start, end_s=end
                )
                problem = turn_problem(turn, f"{where}: the turn")
                if problem:
                    raise InputError(problem, kind="bad_turn")
                call.turns.append(turn)
            except InputError as exc:
                exc.line = first
                call.problem = exc
    except csv.Error as exc:
        raise InputError(
            f"line {reader.line_num}: cannot read the CSV: {exc} (is the file truncated?)",
            kind="parse",
            line=reader.line_num,
        ) from None

    yield from loose
    for call_id, call in calls.items():
        if call.problem is not None:
            yield call.problem
            continue
        call.facts["external_id"] = call_id
        try:
            yield build_call(
                ctx,
                facts=call.facts,
                turns=call.turns,
                source=source,
                whole_file=False,
                where=f"line {call.first_line}",
            )
        except InputError as exc:
            exc.line = call.first_line
            yield exc
