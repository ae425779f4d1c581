"""Every transcript format coachloop reads, chosen by file extension and content."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ingest._read import FileContext, decode
from ingest.calls import ParsedCall
from ingest.errors import InputError
from ingest.formats.jsonish import parse_json, parse_jsonl
from ingest.formats.plain import parse_txt
from ingest.formats.subtitles import parse_srt, parse_vtt
from ingest.formats.table import parse_csv

EXTENSIONS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".vtt": "vtt",
    ".srt": "srt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "txt",
    ".text": "txt",
}
_SRT_HEAD = re.compile(r"^\d+\s*\r?\n\s*\d[\d:,.]*\s+-->")


def detect(path: Path, text: str) -> str | None:
    """The format of a file: its extension, unless the content clearly says otherwise.

    A `.txt` file or one with an unknown extension that starts with `WEBVTT`, with JSON, or
    with an SRT subtitle block is read as that format.
    """
    by_extension = EXTENSIONS.get(path.suffix.lower())
    if by_extension not in (None, "txt"):
        return by_extension
    head = text.lstrip()[:200]
    if head.startswith("WEBVTT"):
        return "vtt"
    if head[:1] in ("{", "["):
        return "json"
    if _SRT_HEAD.match(head):
        return "srt"
    return by_extension


def parse_file(path: Path, data: bytes, ctx: FileContext) -> Iterator[ParsedCall | InputError]:
    """Parse one file's bytes into calls and per-record rejections.

    Raises:
        InputError: The whole file is unusable (encoding, empty, unsupported, syntax, and
            any problem in a one-call format).
    """
    known = path.suffix.lower() in EXTENSIONS
    try:
        text = decode(data)
    except InputError:
        if known:
            raise
        text = ""
    if known and not text.strip():
        raise InputError("the file is empty", kind="empty")
    fmt = detect(path, text) if text.strip() else None
    if fmt is None:
        shown = path.suffix or "(no extension)"
        raise InputError(
            f"`{shown}` files are not a transcript format coachloop reads; use one of "
            f"{', '.join(sorted(EXTENSIONS))}",
            kind="unsupported",
        )
    if fmt == "json":
        yield from parse_json(text, ctx)
    elif fmt == "jsonl":
        yield from parse_jsonl(text, ctx)
    elif fmt in ("csv", "tsv"):
        yield from parse_csv(text, ctx, tab=fmt == "tsv")
    elif fmt == "vtt":
        yield parse_vtt(text, ctx)
    elif fmt == "srt":
        yield parse_srt(text, ctx)
    else:
        yield parse_txt(text, ctx)


def read_file(path: Path, ctx: FileContext, max_bytes: int) -> Iterator[ParsedCall | InputError]:
    """Read and parse one file; every problem comes back as an `InputError` item, never raised."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            yield InputError(
                f"the file is {size:,} bytes, over the {max_bytes:,} byte limit; split it or "
                "raise COACHLOOP_INGEST__MAX_FILE_BYTES",
                kind="too_large",
            )
            return
        data = path.read_bytes()
    except OSError as exc:
        yield InputError(f"cannot read the file: {exc.strerror}", kind="unreadable")
        return
    try:
        yield from parse_file(path, data, ctx)
    except InputError as exc:
        yield exc
    except RecursionError:
        yield InputError("the file is nested too deeply to read", kind="parse")
