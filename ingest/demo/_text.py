"""Template files and how their lines are filled in.

A template line reads `A: text` (the rep's side) or `C: text` (the other side). In the text,
`[[one|two]]` picks one option and `{slot}` is replaced by a fact of the call; a fact may itself
hold slots or choices, which are filled in turn.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_DIR = Path(__file__).parent / "templates"

Line = tuple[str, str]
"""(speaker, text) with speaker `agent` or `customer`."""
Exchange = list[Line]

_CHOICE = re.compile(r"\[\[([^\[\]]*)\]\]")
_SLOT = re.compile(r"\{([a-z_]+)\}")
_SPACES = re.compile(r"\s{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,?!:;])")
_SPEAKERS = {"A": "agent", "C": "customer"}
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_POOLS: dict[tuple[int, tuple[str | int, ...]], tuple[object, list[Exchange]]] = {}


class TemplateError(Exception):
    """A demo template that cannot be used; the message names the file, key and problem."""


@cache
def load_template(name: str) -> dict[str, Any]:
    """Read `templates/<name>.yaml` once per process."""
    path = TEMPLATE_DIR / f"{name}.yaml"
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except FileNotFoundError:
        raise TemplateError(f"{path}: no such demo template") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: a demo template must hold a mapping")
    return data


def node(data: Mapping[str, Any], *keys: str | int, where: str) -> Any:
    """Follow `keys` into a template, naming the missing key if there is none."""
    current: Any = data
    path = where
    for key in keys:
        path = f"{path}.{key}"
        if not isinstance(current, Mapping) or key not in current:
            raise TemplateError(f"{path}: missing in the demo template")
        current = current[key]
    return current


def parse_exchange(raw: Any, *, where: str) -> Exchange:
    """One variant: a line or a list of lines, each `A: ...` or `C: ...`."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise TemplateError(f"{where}: expected a line or a list of lines")
    lines: Exchange = []
    for item in items:
        if not isinstance(item, str) or item[:2] not in {"A:", "C:"}:
            raise TemplateError(f"{where}: every line starts with 'A:' or 'C:', got {item!r}")
        lines.append((_SPEAKERS[item[0]], item[2:].strip()))
    return lines


def pool(data: Mapping[str, Any], *keys: str | int, where: str) -> list[Exchange]:
    """A list of variants at `keys` (parsed once per template node)."""
    cached = _POOLS.get((id(data), keys))
    if cached is not None and cached[0] is data:
        return cached[1]
    raw = node(data, *keys, where=where)
    label = ".".join([where, *map(str, keys)])
    if not isinstance(raw, list) or not raw:
        raise TemplateError(f"{label}: expected a non-empty list of variants")
    parsed = [parse_exchange(item, where=f"{label}[{i}]") for i, item in enumerate(raw)]
    _POOLS[(id(data), keys)] = (data, parsed)
    return parsed


def strings(data: Mapping[str, Any], *keys: str | int, where: str) -> list[str]:
    raw = node(data, *keys, where=where)
    label = ".".join([where, *map(str, keys)])
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw) or not raw:
        raise TemplateError(f"{label}: expected a non-empty list of strings")
    return list(raw)


def fill(text: str, facts: Mapping[str, str], rng: random.Random, *, where: str = "") -> str:
    """Pick every `[[a|b]]` choice and replace every `{slot}`, then tidy the spacing."""
    if "{" not in text and "[[" not in text and "  " not in text:
        return text[:1].upper() + text[1:]
    for _ in range(4):
        text = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), text)
        missing = [name for name in _SLOT.findall(text) if name not in facts]
        if missing:
            raise TemplateError(f"{where}: unknown slot {{{missing[0]}}} in {text!r}")
        text = _SLOT.sub(lambda m: facts[m.group(1)], text)
        if "{" not in text and "[[" not in text:
            break
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", text)).strip()
    return text[:1].upper() + text[1:]


def render(
    exchange: Exchange, facts: Mapping[str, str], rng: random.Random, *, where: str = ""
) -> Exchange:
    return [(speaker, fill(text, facts, rng, where=where)) for speaker, text in exchange]


def merge_turns(lines: list[Line]) -> list[Line]:
    """Join consecutive lines of the same speaker into one turn."""
    merged: list[Line] = []
    for speaker, text in lines:
        if not text:
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1] = (speaker, f"{merged[-1][1]} {text}")
        else:
            merged.append((speaker, text))
    return merged
