"""Mappings: how another platform's JSON or CSV export names its fields.

A mapping is a small YAML file::

    name: acme-voice            # also the `source` of the calls it reads
    format: json                # json (default) or csv
    calls: conversations        # dotted path to a list of calls; omit: the file is one call
    utterances: transcript.segments   # dotted path, inside a call, to its utterance list
    fields:                     # dotted paths inside a call (ids) or an utterance (turns)
      call_id: id
      rep: agent.email
      started_at: created_at
      speaker: role
      text: content
      start: start_ms
      end: end_ms
    time_unit: ms               # unit of start/end: s or ms
    defaults: {rep: ..., team: ..., channel: phone, started_at: ...}
    speakers: {AGENT: agent, END_USER: customer, BOT: other}
    unknown_speaker: reject     # or `other`

`speakers`, `unknown_speaker` and `defaults` apply to every file of the run, whatever its
format; the rest applies to JSON files that are not coachloop calls (format json) or to CSV
files (format csv, where `fields` are column names).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.calls import CHANNELS, as_utc
from ingest.errors import MappingError
from store.models import Speaker

MAPPINGS_DIR = Path(__file__).parent / "mappings"


class FieldNames(BaseModel):
    """Where each value is: a dotted path (JSON) or a column name (CSV); null to not read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: str | None = "call_id"
    rep: str | None = "rep"
    team: str | None = "team"
    channel: str | None = "channel"
    started_at: str | None = "started_at"
    duration: str | None = "duration"
    speaker: str = "speaker"
    text: str = "text"
    start: str | None = "start"
    end: str | None = "end"


class MappingDefaults(BaseModel):
    """Values for calls whose file does not say; the CLI's --rep and --team win over all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rep: str | None = None
    team: str | None = None
    channel: str | None = None
    started_at: datetime | None = None

    @field_validator("channel")
    @classmethod
    def _known_channel(cls, value: str | None) -> str | None:
        if value is not None and value not in CHANNELS:
            raise ValueError(f"must be one of {', '.join(CHANNELS)}")
        return value

    @field_validator("started_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class ExportMapping(BaseModel):
    """How to read another platform's export; see the module docstring for an example."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", max_length=64)
    format: Literal["json", "csv"] = "json"
    calls: str | None = None
    """Dotted path to a list of calls; None: the file is one call; "": the file is a list."""
    utterances: str = ""
    """Dotted path, inside a call, to its utterance list; "": the call itself is the list."""
    fields: FieldNames = FieldNames()
    time_unit: Literal["s", "ms"] = "s"
    defaults: MappingDefaults = MappingDefaults()
    speakers: dict[str, Speaker] = {}
    unknown_speaker: Literal["reject", "other"] = "reject"

    @property
    def units_per_second(self) -> float:
        return 1000.0 if self.time_unit == "ms" else 1.0


def load_mapping(path: Path) -> ExportMapping:
    """Read and check a mapping file.

    Raises:
        MappingError: The file is missing, is not YAML, or has an unknown or invalid field;
            the message names the file and the field.
    """
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MappingError(f"Mapping file `{path}` does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"Cannot read mapping file `{path}`: {exc}") from None
    if not isinstance(raw, dict):
        raise MappingError(f"Mapping file `{path}` must hold a YAML mapping with a `name`")
    try:
        return ExportMapping.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"`{'.'.join(str(p) for p in err['loc'])}`: {err['msg']}" for err in exc.errors()
        )
        raise MappingError(f"Mapping file `{path}` is invalid: {problems}") from None
