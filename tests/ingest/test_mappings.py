"""Other platforms' exports through mapping files, including the two shipped examples."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from config.settings import IngestSettings
from ingest import ExportMapping, MappingError, load_mapping
from ingest.mapping import MAPPINGS_DIR
from store.models import Speaker

CONTACT_CENTRE = {
    "exported_at": "2026-03-03T00:00:00Z",
    "conversations": [
        {
            "id": "8f1c",
            "queue": "billing",
            "start_time": "2026-03-02T09:30:00Z",
            "agent": {"email": "ana@harbor.example"},
            "transcript": {
                "utterances": [
                    {
                        "role": "IVR",
                        "content": "Calls are recorded.",
                        "offset_ms": 0,
                        "end_ms": 1500,
                    },
                    {
                        "role": "AGENT",
                        "content": "Thanks for calling.",
                        "offset_ms": 1600,
                        "end_ms": 3200,
                    },
                    {
                        "role": "END_USER",
                        "content": "I was charged twice.",
                        "offset_ms": 3400,
                        "end_ms": 6100,
                    },
                ]
            },
        },
        {
            "id": "8f1d",
            "start_time": "2026-03-02T10:00:00Z",
            "agent": {"email": "ben@harbor.example"},
            "transcript": {
                "utterances": [
                    {"role": "AGENT", "content": "Hello.", "offset_ms": 0, "end_ms": 900},
                    {
                        "role": "SUPERVISOR",
                        "content": "Barging in.",
                        "offset_ms": 1000,
                        "end_ms": 2000,
                    },
                ]
            },
        },
    ],
}

DIARISED = [
    {
        "speaker_label": "spk_0",
        "start_time": "0.52",
        "end_time": "3.10",
        "transcript": "Harbor, Sam speaking.",
    },
    {
        "speaker_label": "spk_1",
        "start_time": "3.40",
        "end_time": "5.95",
        "transcript": "My parcel never arrived.",
    },
    {"speaker_label": "spk_2", "start_time": "6.00", "end_time": "6.50", "transcript": "Hm."},
]


def test_shipped_mappings_load() -> None:
    names = {load_mapping(p).name for p in sorted(MAPPINGS_DIR.glob("*.yaml"))}

    assert names == {"contact-centre", "diarised"}


def test_contact_centre_export_with_many_calls_and_milliseconds(
    sqlite_engine: Engine, write, run, stored, people
) -> None:
    mapping = load_mapping(MAPPINGS_DIR / "contact-centre-ms.yaml")
    path = write("export-2026-03-02.json", json.dumps(CONTACT_CENTRE))

    report = run(sqlite_engine, path, mapping=mapping)

    assert (report.new, report.rejected) == (1, 1)
    assert "call 2: utterance 2: speaker `SUPERVISOR`" in report.rejections[0].reason
    [(call, turns)] = stored(sqlite_engine)
    assert (call.external_id, call.source) == ("8f1c", "contact-centre")
    assert call.started_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert [(t.speaker, t.start_s, t.end_s) for t in turns] == [
        (Speaker.other, 0.0, 1.5),
        (Speaker.agent, 1.6, 3.2),
        (Speaker.customer, 3.4, 6.1),
    ]
    assert [p.external_id for p in people(sqlite_engine)] == ["ana@harbor.example"]


def test_diarised_segments_take_rep_and_time_from_the_file_name(
    sqlite_engine: Engine, write, run, stored
) -> None:
    mapping = load_mapping(MAPPINGS_DIR / "diarised-segments.yaml")
    path = write("sam@harbor.example__20260302T093000__rec-77.json", json.dumps(DIARISED))

    report = run(sqlite_engine, path, mapping=mapping)
    again = run(
        sqlite_engine,
        write("x__20260302T093000__copy-of-rec-77.json", json.dumps(DIARISED)),
        mapping=mapping,
        rep="x",
    )

    assert report.new == 1, report.rejections
    assert again.duplicate == 1
    [(call, turns)] = stored(sqlite_engine)
    assert (call.external_id, call.source, call.channel) == ("rec-77", "diarised", "phone")
    assert [(t.speaker, t.start_s) for t in turns] == [
        (Speaker.agent, 0.52),
        (Speaker.customer, 3.4),
        (Speaker.other, 6.0),
    ]


def test_mapping_from_settings_is_used_when_none_is_passed(
    sqlite_engine: Engine, write, run
) -> None:
    settings = IngestSettings(mapping_file=MAPPINGS_DIR / "diarised-segments.yaml")
    path = write("r-1__20260302T093000__rec-1.json", json.dumps(DIARISED))

    report = run(sqlite_engine, path, settings=settings)

    assert report.new == 1


def test_export_without_a_mapping_says_how_to_read_it(sqlite_engine: Engine, write, run) -> None:
    report = run(sqlite_engine, write("export.json", json.dumps(CONTACT_CENTRE)))

    assert "missing required field `turns`" in report.rejections[0].reason
    assert "--mapping FILE" in report.rejections[0].reason


def test_export_missing_its_utterance_list_is_named(sqlite_engine: Engine, write, run) -> None:
    mapping = load_mapping(MAPPINGS_DIR / "contact-centre-ms.yaml")
    broken = {
        "conversations": [{"id": "1", "agent": {"email": "a@b.c"}, "start_time": "2026-03-02"}]
    }

    report = run(sqlite_engine, write("x.json", json.dumps(broken)), mapping=mapping)

    assert "call 1: no utterance list at `transcript.utterances`" in report.rejections[0].reason


def test_csv_with_renamed_columns_and_milliseconds(
    sqlite_engine: Engine, write, run, stored
) -> None:
    mapping = ExportMapping.model_validate(
        {
            "name": "dialer",
            "format": "csv",
            "fields": {
                "call_id": "Conversation",
                "rep": "Agent Email",
                "started_at": "Call Start",
                "speaker": "Party",
                "start": "Offset",
                "end": None,
                "text": "Utterance",
            },
            "time_unit": "ms",
            "speakers": {"A": "agent", "C": "customer"},
        }
    )
    body = (
        "Conversation,Agent Email,Call Start,Party,Offset,Utterance\n"
        "d-1,ana@harbor.example,2026-03-02 09:30:00,A,0,Hello\n"
        "d-1,ana@harbor.example,2026-03-02 09:30:00,C,1500,Hi there\n"
    )

    report = run(sqlite_engine, write("dialer.csv", body), mapping=mapping)

    assert report.new == 1, report.rejections
    [(call, turns)] = stored(sqlite_engine)
    assert call.source == "dialer"
    assert [(t.speaker, t.start_s, t.end_s) for t in turns] == [
        (Speaker.agent, 0.0, None),
        (Speaker.customer, 1.5, None),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name: x\nfields: {speaker: who, colour: red}\n", "`fields.colour`: Extra inputs"),
        ("name: x\ntime_unit: minutes\n", "`time_unit`"),
        ("name: x\nspeakers: {A: boss}\n", "`speakers.A`"),
        ("- just a list\n", "must hold a YAML mapping with a `name`"),
        ("name: [unclosed\n", "Cannot read mapping file"),
    ],
)
def test_bad_mapping_files_name_the_field(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(content)

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="does not exist"):
        load_mapping(tmp_path / "nope.yaml")
