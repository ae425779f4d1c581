"""Line-level helpers for the text formats: speaker prefixes, tags, blocks."""

from __future__ import annotations

import html
import re

from ingest.speakers import SpeakerResolver

_COLON = re.compile(r"^\s*(?:-\s*)?([A-Za-z][\w .'()\[\]#/&-]{0,39}?)\s*:(?:\s+|$)(.*)$")
_DASH = re.compile(r"^\s*([A-Za-z][\w .'()\[\]#/&]{0,39}?)\s+[-\u2013\u2014]\s+(.*)$")
_TAG = re.compile(r"<[^>]*>")


def split_speaker(line: str, speakers: SpeakerResolver) -> tuple[str | None, str]:
    """(`label`, rest) for "Agent: ..." or "CUSTOMER - ...", or (None, line) for plain text.

    A colon prefix of up to three words always counts as a label (an unknown one is then
    reported, not silently glued to the previous turn). A dash prefix counts only when the
    label is known or written in capitals, so "Well - I think so" stays text.
    """
    colon = _COLON.match(line)
    dash = _DASH.match(line)
    if colon and dash and len(dash.group(1)) < len(colon.group(1)):
        if speakers.is_known(dash.group(1)) or dash.group(1).isupper():
            return dash.group(1).strip(), dash.group(2)
    if colon and len(colon.group(1).split()) <= 3:
        return colon.group(1).strip(), colon.group(2)
    if dash and (speakers.is_known(dash.group(1)) or dash.group(1).isupper()):
        return dash.group(1).strip(), dash.group(2)
    return None, line


def clean_text(text: str) -> str:
    """Drop markup tags, resolve entities (`&amp;`) and collapse whitespace."""
    if "<" in text:
        text = _TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return " ".join(text.split())


def lines_of(text: str) -> list[str]:
    """Split on newlines only (JSON and captions may hold U+2028 inside text)."""
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def blocks(lines: list[str], start: int = 0) -> list[tuple[int, list[str]]]:
    """Groups of non-blank lines, each with the 1-based number of its first line."""
    found: list[tuple[int, list[str]]] = []
    current: list[str] = []
    first = 0
    for index in range(start, len(lines)):
        line = lines[index]
        if line.strip():
            if not current:
                first = index + 1
            current.append(line)
        elif current:
            found.append((first, current))
            current = []
    if current:
        found.append((first, current))
    return found
