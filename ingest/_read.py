"""Helpers every format shares: decoding, times, file-name metadata, building a call."""

from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ingest.calls import CHANNELS, ParsedCall, ParsedTurn, as_utc, content_hash
from ingest.errors import InputError
from ingest.mapping import ExportMapping
from ingest.speakers import SpeakerResolver

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")
HEADER_KEYS = {
    "id": "external_id",
    "external_id": "external_id",
    "call_id": "external_id",
    "rep": "rep",
    "team": "team",
    "channel": "channel",
    "started_at": "started_at",
    "duration": "duration_s",
    "duration_s": "duration_s",
}
"""Metadata keys a VTT `NOTE` or a text `# key: value` header may use, and what they set."""
_FILE_NAME = re.compile(r"^(?P<rep>.+?)__(?P<ts>\d{8}T\d{6})Z?__(?P<id>.+)$")


def decode(data: bytes) -> str:
    """Text of a file: UTF-8 (with or without BOM), or UTF-16/32 with a BOM.

    Raises:
        InputError: The bytes are not valid in that encoding; the message gives the offset.
    """
    offset, codec, name = 0, "utf-8", "UTF-8"
    for bom, bom_codec, bom_name in _BOMS:
        if data.startswith(bom):
            offset, codec, name = len(bom), bom_codec, bom_name
            break
    try:
        text = data[offset:].decode(codec)
    except UnicodeDecodeError as exc:
        at = offset + exc.start
        raise InputError(
            f"not valid {name} at byte {at} (0x{data[at]:02x}): {exc.reason}; "
            "save the file as UTF-8 (UTF-16 needs a byte-order mark)",
            kind="encoding",
        ) from None
    if "\x00" in text:
        at = data.find(b"\x00")
        raise InputError(
            f"contains a NUL byte at byte {at}; if it is UTF-16, save it with a byte-order "
            "mark or as UTF-8",
            kind="encoding",
        )
    return text


def parse_clock(value: str) -> float:
    """`01:02:03.450`, `02:03,5` or `2:03` to seconds."""
    match = _CLOCK.match(value.strip())
    if not match:
        raise ValueError(value)
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds.replace(",", "."))


def parse_seconds(value: Any, per_second: float = 1.0) -> float | None:
    """A time offset: a number (in 1/`per_second` s), a numeric string, or a clock string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return float(value) / per_second
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return float(text) / per_second
        except ValueError:
            return parse_clock(text)
    raise ValueError(value)


def parse_started_at(value: Any) -> datetime:
    """ISO-8601 text (no offset means UTC), a datetime, or epoch seconds / milliseconds."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(value)
        seconds = value / 1000 if abs(value) > 1e11 else value
        return datetime.fromtimestamp(seconds, UTC)
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return parse_started_at(int(text))
        return as_utc(datetime.fromisoformat(text))
    raise ValueError(value)


def file_name_facts(path: Path) -> dict[str, Any]:
    """Rep, start time and id from a name like `ana@x.com__20260302T093000__c-17.vtt`."""
    match = _FILE_NAME.match(path.stem)
    if not match:
        return {}
    try:
        started = datetime.strptime(match["ts"], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return {}
    return {"rep": match["rep"], "started_at": started, "external_id": match["id"]}


@dataclass(frozen=True, slots=True)
class Overrides:
    """Values given on the command line; they win over anything a file says."""

    rep: str | None = None
    team: str | None = None
    source: str | None = None


@dataclass(slots=True)
class FileContext:
    path: Path
    speakers: SpeakerResolver
    mapping: ExportMapping | None = None
    overrides: Overrides = field(default_factory=Overrides)
    _name_facts: dict[str, Any] | None = None

    @property
    def name_facts(self) -> dict[str, Any]:
        if self._name_facts is None:
            self._name_facts = file_name_facts(self.path)
        return self._name_facts

    def speaker(self, label: str, where: str) -> Any:
        speaker = self.speakers.resolve(label)
        if speaker is None:
            raise InputError(self.speakers.unknown_reason(label, where), kind="unknown_speaker")
        return speaker


_HOW_TO = {
    "rep": "add `rep` to the file, name the file `<rep>__<YYYYmmddTHHMMSS>__<id>.<ext>`, "
    "or pass --rep",
    "started_at": "add `started_at` to the file (ISO-8601) or name the file "
    "`<rep>__<YYYYmmddTHHMMSS>__<id>.<ext>`",
}


def build_call(
    ctx: FileContext,
    *,
    facts: dict[str, Any],
    turns: list[ParsedTurn],
    source: str,
    meta: dict[str, Any] | None = None,
    whole_file: bool,
    derive_id: bool = False,
    where: str = "",
    id_field: str = "external_id",
) -> ParsedCall:
    """Combine what the file says with the command line, the file name and the mapping.

    Precedence: --rep/--team, then the file's own values, then the file name (only when the
    file holds one call), then the mapping's defaults. With `derive_id`, a call without an
    id gets `<file stem>-<first 12 hex of the content hash>`.
    """
    prefix = f"{where}: " if where else ""
    name = ctx.name_facts if whole_file else {}
    defaults = ctx.mapping.defaults if ctx.mapping else None

    def pick(key: str) -> Any:
        value = facts.get(key)
        if value is None or value == "":
            value = name.get(key)
        if (value is None or value == "") and defaults is not None:
            value = getattr(defaults, key, None)
        return None if value == "" else value

    external_id = pick("external_id")
    call_label = f"call `{external_id}`: "
    if external_id is None:
        if not derive_id:
            raise InputError(f"{prefix}missing required field `{id_field}`", kind="missing_field")
        external_id = f"{ctx.path.stem}-{content_hash(turns)[:12]}"
        call_label = ""

    rep = ctx.overrides.rep or pick("rep")
    if rep is None:
        raise InputError(
            f"{prefix}{call_label}missing required field `rep`; {_HOW_TO['rep']}",
            kind="missing_field",
        )
    started_raw = pick("started_at")
    if started_raw is None:
        raise InputError(
            f"{prefix}{call_label}missing required field `started_at`; {_HOW_TO['started_at']}",
            kind="missing_field",
        )
    try:
        started_at = parse_started_at(started_raw)
    except (ValueError, OverflowError, OSError):
        raise InputError(
            f"{prefix}{call_label}`started_at` value `{started_raw}` is not an ISO-8601 time "
            "(e.g. 2026-03-02T09:30:00Z)",
            kind="bad_field",
        ) from None
    channel = pick("channel") or "phone"
    if channel not in CHANNELS:
        raise InputError(
            f"{prefix}{call_label}channel `{channel}` is not one of {', '.join(CHANNELS)}",
            kind="bad_field",
        )
    duration_raw = facts.get("duration_s")
    try:
        duration = parse_seconds(duration_raw)
    except ValueError:
        raise InputError(
            f"{prefix}{call_label}`duration_s` value `{duration_raw}` is not a number of seconds",
            kind="bad_field",
        ) from None
    if not turns:
        raise InputError(f"{prefix}{call_label}the call has no turns", kind="missing_field")
    team = ctx.overrides.team or pick("team")
    meta = dict(meta or {})
    meta.setdefault("source_file", ctx.path.name)
    call = ParsedCall(
        external_id=str(external_id),
        rep=str(rep),
        team=None if team is None else str(team),
        channel=str(channel),
        started_at=started_at,
        duration_s=duration,
        turns=turns,
        meta=meta,
        source=ctx.overrides.source or source,
    )
    problems = call.problems(turns=False)
    if problems:
        raise InputError(f"{prefix}{call_label}{'; '.join(problems)}", kind="bad_field")
    return call
