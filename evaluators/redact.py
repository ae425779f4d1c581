"""Replace card numbers, national ids, phone numbers and e-mail addresses with typed markers.

Used before transcript text leaves the machine (an LLM endpoint elsewhere). The detectors aim
at what people actually say or type in support conversations:

- `[CARD]`: 13-19 digits, contiguous or in groups split by single spaces or dashes, that pass
  the Luhn check (so an order number of the same length usually survives);
- `[NATIONAL_ID]`: US social security numbers (`123-45-6789`, `123 45 6789`, or nine bare
  digits right after "SSN"/"social security") and UK National Insurance numbers
  (`QQ 12 34 56 C`);
- `[PHONE]`: international numbers (`+44 20 7946 0958`, `0044 ...`), North American
  (`(415) 555-0132`, `415-555-0132`), and numbers written with a leading trunk zero
  (`020 7946 0958`, `07700 900123`, `06 12 34 56 78`);
- `[EMAIL]`: written addresses and spoken ones ("jo dot smith at example dot com").

Times, dates, amounts of money, short reference numbers and digit runs that fail Luhn are
left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["CARD", "NATIONAL_ID", "PHONE", "EMAIL"]
PLACEHOLDERS: dict[PiiKind, str] = {
    "CARD": "[CARD]",
    "NATIONAL_ID": "[NATIONAL_ID]",
    "PHONE": "[PHONE]",
    "EMAIL": "[EMAIL]",
}


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: PiiKind
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    counts: dict[str, int]
    """Replacements made, by kind; safe to log."""


# -- e-mail ---------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
_SPOKEN_TLD = r"(?:com|net|org|io|co\s+dot\s+uk|org\s+dot\s+uk|ac\s+dot\s+uk|gov\s+dot\s+uk|uk|ie|de|fr|us|ca|au|edu|gov|info|biz|me)"
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9][a-z0-9_]*(?:\s+(?:dot|underscore|dash|hyphen)\s+[a-z0-9_]+)*"
    r"\s+at\s+[a-z0-9][a-z0-9-]*(?:\s+dot\s+[a-z0-9-]+)*?\s+dot\s+" + _SPOKEN_TLD + r"\b",
    re.IGNORECASE,
)

# -- national ids ---------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w-])")
_SSN_BARE = re.compile(
    r"\b(?:ssn|social\s+security(?:\s+number)?)\b\D{0,20}?"
    r"(?<!\d)((?!000|666|9\d\d)\d{3}(?!00)\d{2}(?!0000)\d{4})(?!\d)",
    re.IGNORECASE,
)
_NINO = re.compile(
    r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D](?![\w])",
    re.IGNORECASE,
)

# -- phones ---------------------------------------------------------------------------------

_SEP = r"[ .\-]"
_INTERNATIONAL = re.compile(
    r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}"
    r"(?:" + _SEP + r"?\(0\))?"
    r"(?:" + _SEP + r"?\(?\d{1,5}\)?){1,6}(?![\w])"
)
_NORTH_AMERICAN = re.compile(
    r"(?<![\w+\-.])(?:1" + _SEP + r"?)?(?:\(\d{3}\)\s?|\d{3}" + _SEP + r")\d{3}" + _SEP + r"\d{4}"
    r"(?![\w\-]|\.\d)"
)
_TRUNK_ZERO = re.compile(
    # one separator throughout, so "05-12-2024 10" (a date, then a number) is not a phone
    r"(?<![\w+\-.:/])0[1-9]\d{0,4}(" + _SEP + r")\d{2,8}(?:\1\d{2,8}){0,3}(?![\w\-]|[.:/]\d)"
)
_TRUNK_ZERO_COMPACT = re.compile(r"(?<![\w+\-.:/])0[1-9]\d{8,9}(?![\w\-]|[.:/]\d)")

# -- cards ----------------------------------------------------------------------------------

_DIGIT_RUN = re.compile(r"(?<![\w+.,])\d+(?:[ \-]\d+)*(?!\w|[.,]\d)")
_DIGITS = re.compile(r"\d+")


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_spans(text: str) -> list[PiiSpan]:
    """Luhn-valid stretches of 13-19 digits within runs of digit groups, longest first.

    A card number followed by an unrelated number ("4111 1111 1111 1111 2 times") is still
    found, because every stretch of consecutive groups is tried, not only the whole run.
    """
    spans: list[PiiSpan] = []
    for run in _DIGIT_RUN.finditer(text):
        groups = [
            (run.start() + m.start(), run.start() + m.end()) for m in _DIGITS.finditer(run.group())
        ]
        i = 0
        while i < len(groups):
            digits = ""
            best: int | None = None
            for j in range(i, len(groups)):
                digits += text[groups[j][0] : groups[j][1]]
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    best = j
            if best is None:
                i += 1
                continue
            spans.append(PiiSpan("CARD", groups[i][0], groups[best][1]))
            i = best + 1
    return spans


def _digit_count(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def find_pii(text: str) -> list[PiiSpan]:
    """Every span to redact, left to right, without overlaps (e-mails, cards, ids, phones)."""
    candidates: list[PiiSpan] = []
    candidates += [PiiSpan("EMAIL", m.start(), m.end()) for m in _EMAIL.finditer(text)]
    candidates += [PiiSpan("EMAIL", m.start(), m.end()) for m in _SPOKEN_EMAIL.finditer(text)]
    candidates += _card_spans(text)
    candidates += [PiiSpan("NATIONAL_ID", m.start(), m.end()) for m in _SSN.finditer(text)]
    candidates += [PiiSpan("NATIONAL_ID", m.start(1), m.end(1)) for m in _SSN_BARE.finditer(text)]
    candidates += [PiiSpan("NATIONAL_ID", m.start(), m.end()) for m in _NINO.finditer(text)]
    for match in _INTERNATIONAL.finditer(text):
        number = match.group()
        if number.startswith("00") and not re.search(r"[ .\-()]", number):
            continue  # "0012345678" is far more often a reference than a dialled number
        digits = _digit_count(number) - (2 if number.startswith("00") else 0)
        if 8 <= digits <= 15:
            candidates.append(PiiSpan("PHONE", match.start(), match.end()))
    candidates += [PiiSpan("PHONE", m.start(), m.end()) for m in _NORTH_AMERICAN.finditer(text)]
    for match in _TRUNK_ZERO.finditer(text):
        if 9 <= _digit_count(match.group()) <= 11:
            candidates.append(PiiSpan("PHONE", match.start(), match.end()))
    candidates += [PiiSpan("PHONE", m.start(), m.end()) for m in _TRUNK_ZERO_COMPACT.finditer(text)]

    # earlier detectors win on overlap (a Luhn-valid card beats a phone-shaped reading of it)
    priority = {kind: rank for rank, kind in enumerate(PLACEHOLDERS)}
    chosen: list[PiiSpan] = []
    for span in sorted(candidates, key=lambda s: (priority[s.kind], s.start, -(s.end - s.start))):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


def redact_text(text: str) -> Redacted:
    spans = find_pii(text)
    parts: list[str] = []
    cursor = 0
    for span in spans:
        parts.append(text[cursor : span.start])
        parts.append(PLACEHOLDERS[span.kind])
        cursor = span.end
    parts.append(text[cursor:])
    return Redacted(text="".join(parts), counts=dict(Counter(span.kind for span in spans)))


def redact(text: str) -> str:
    """`text` with every card number, national id, phone number and e-mail replaced."""
    return redact_text(text).text
