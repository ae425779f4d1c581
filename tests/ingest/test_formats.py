"""Every transcript format, parsed and stored through `ingest_paths`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from config.settings import IngestSettings
from ingest import SpeakerResolver
from store.models import Speaker

CALL = {
    "external_id": "c-1",
    "rep": "ana@harbor.example",
    "team": "north",
    "channel": "chat",
    "started_at": "2026-03-02T10:30:00+01:00",
    "duration_s": 12.5,
    "turns": [
        {"speaker": "agent", "start_s": 0.0, "end_s": 3.2, "text": "Thanks for calling Harbor."},
        {"speaker": "customer", "start_s": 3.4, "end_s": 6.0, "text": "My card was charged twice."},
        {"speaker": "other", "start_s": 6.0, "end_s": 7.0, "text": "Please hold."},
    ],
    "meta": {"queue": "billing"},
}


def _call(n: int, **changes: object) -> dict[str, object]:
    call = {**CALL, "external_id": f"c-{n}", **changes}
    call["turns"] = [{**t, "text": f"{t['text']} ({n})"} for t in CALL["turns"]]  # type: ignore[attr-defined]
    return call


def test_native_json_call_is_stored_with_every_field(
    sqlite_engine: Engine, write, run, stored, people
) -> None:
    path = write("call.json", json.dumps(CALL))

    report = run(sqlite_engine, path)

    assert (report.new, report.duplicate, report.rejected) == (1, 0, 0)
    [(call, turns)] = stored(sqlite_engine)
    assert call.external_id == "c-1"
    assert call.source == "json"
    assert call.channel == "chat"
    assert call.started_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert call.duration_s == 12.5
    assert call.turn_count == 3
    assert call.meta == {"queue": "billing", "source_file": "call.json"}
    assert [(t.speaker, t.start_s, t.end_s) for t in turns] == [
        (Speaker.agent, 0.0, 3.2),
        (Speaker.customer, 3.4, 6.0),
        (Speaker.other, 6.0, 7.0),
    ]
    assert turns[1].text == "My card was charged twice."
    [rep] = people(sqlite_engine)
    assert (rep.external_id, rep.name, rep.email) == (
        "ana@harbor.example",
        "ana@harbor.example",
        "ana@harbor.example",
    )
    assert call.rep_id == rep.id and call.team_id == rep.team_id is not None
    assert report.new_interaction_ids == [call.id]


def test_json_list_sets_aside_only_the_bad_call_and_names_its_line(
    sqlite_engine: Engine, write, run, stored
) -> None:
    bad = _call(2)
    del bad["started_at"]
    text = "[\n" + ",\n".join(json.dumps(c) for c in [_call(1), bad, _call(3)]) + "\n]"
    path = write("calls.json", text)

    report = run(sqlite_engine, path)

    assert (report.new, report.rejected) == (2, 1)
    [rejection] = report.rejections
    assert rejection.line == 3
    assert "line 3" in rejection.reason
    assert "missing required field `started_at`" in rejection.reason
    assert [c.external_id for c, _ in stored(sqlite_engine)] == ["c-1", "c-3"]


def test_jsonl_bad_line_is_rejected_with_its_number_and_the_rest_go_through(
    sqlite_engine: Engine, write, run, stored
) -> None:
    lines = [json.dumps(_call(1)), '{"external_id": "c-2", "rep": ', "", json.dumps(_call(3))]
    path = write("calls.jsonl", "\n".join(lines) + "\n")

    report = run(sqlite_engine, path)

    assert (report.new, report.rejected) == (2, 1)
    assert report.rejections[0].line == 2
    assert report.rejections[0].reason.startswith("line 2: not valid JSON")
    assert "truncated" in report.rejections[0].reason
    assert [c.external_id for c, _ in stored(sqlite_engine)] == ["c-1", "c-3"]


def test_json_file_holding_json_lines_is_read_line_by_line(
    sqlite_engine: Engine, write, run
) -> None:
    path = write("calls.json", json.dumps(_call(1)) + "\n" + json.dumps(_call(2)) + "\n")

    report = run(sqlite_engine, path)

    assert (report.new, report.rejected) == (2, 0)


def test_unknown_call_field_is_named(sqlite_engine: Engine, write, run) -> None:
    path = write("call.json", json.dumps({**CALL, "chanel": "chat"}))

    report = run(sqlite_engine, path)

    assert report.new == 0
    assert "unknown field `chanel`" in report.rejections[0].reason


VTT = """WEBVTT
NOTE rep=ben@harbor.example started_at=2026-03-02T09:30:00Z id=v-7 team=north queue="after hours"

1
00:00:00.000 --> 00:00:02.000 align:start
<v Agent Ben>Thanks for calling, this is Ben.</v>

00:00:02.000 --> 00:00:03.500
<v Agent Ben>How can I help?

00:03.600 --> 00:06.000
<v.loud Customer>My order &amp; my refund
are both missing.</v>

00:00:06.100 --> 00:00:07.000
Still missing, honestly.
"""


def test_vtt_voice_tags_note_header_and_merged_cues(
    sqlite_engine: Engine, write, run, stored
) -> None:
    path = write("anything.vtt", VTT)

    report = run(sqlite_engine, path)

    assert (report.new, report.rejected) == (1, 0), report.rejections
    [(call, turns)] = stored(sqlite_engine)
    assert (call.external_id, call.source) == ("v-7", "vtt")
    assert call.started_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert call.meta == {"queue": "after hours", "source_file": "anything.vtt"}
    assert [(t.speaker, t.start_s, t.end_s, t.text) for t in turns] == [
        (Speaker.agent, 0.0, 3.5, "Thanks for calling, this is Ben. How can I help?"),
        (
            Speaker.customer,
            3.6,
            7.0,
            "My order & my refund are both missing. Still missing, honestly.",
        ),
    ]


def test_vtt_without_metadata_uses_the_file_name_and_cli_rep_wins(
    sqlite_engine: Engine, write, run, stored, people
) -> None:
    body = "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>Hi.\n\n00:01.000 --> 00:02.000\n<v Caller>Hello.\n"
    path = write("ana@harbor.example__20260302T093000__call-42.vtt", body)

    report = run(sqlite_engine, path, rep="r-cli", team="west")

    assert report.new == 1
    [(call, _)] = stored(sqlite_engine)
    assert call.external_id == "call-42"
    assert call.started_at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    assert [p.external_id for p in people(sqlite_engine)] == ["r-cli"]


def test_vtt_without_any_start_time_is_rejected_with_the_options(
    sqlite_engine: Engine, write, run
) -> None:
    path = write("plain.vtt", "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>Hi.\n")

    report = run(sqlite_engine, path, rep="r-1")

    assert report.new == 0
    assert "missing required field `started_at`" in report.rejections[0].reason
    assert "<rep>__<YYYYmmddTHHMMSS>__<id>" in report.rejections[0].reason


SRT = """1
00:00:00,000 --> 00:00:02,500
Agent: Good morning, Harbor support.

2
00:00:02,700 --> 00:00:05,000
CUSTOMER - Morning - I said: the parcel never came.

3
00:00:05,100 --> 00:00:06,000
It was due Monday.

4
00:00:06,200 --> 00:00:08,000
Agent Sam: Let me check that for you.
"""


def test_srt_speaker_prefixes_and_unlabelled_continuation(
    sqlite_engine: Engine, write, run, stored
) -> None:
    path = write("r-9__20260302T093000__s-1.srt", SRT)

    report = run(sqlite_engine, path)

    assert report.new == 1, report.rejections
    [(call, turns)] = stored(sqlite_engine)
    assert call.source == "srt"
    assert [(t.speaker, t.start_s, t.end_s) for t in turns] == [
        (Speaker.agent, 0.0, 2.5),
        (Speaker.customer, 2.7, 6.0),
        (Speaker.agent, 6.2, 8.0),
    ]
    assert turns[1].text == "Morning - I said: the parcel never came. It was due Monday."


CSV = """call_id,rep,started_at,speaker,start,end,text
k-1,ana@harbor.example,2026-03-02T09:30:00Z,Agent,0,1.5,"Hello, Harbor."
k-2,ben,2026-03-02T10:00:00Z,agent,0,1,Hi there
k-1,ana@harbor.example,2026-03-02T09:30:00Z,Customer,1.6,3,Hi
k-2,ben,2026-03-02T10:00:00Z,customer,2,1,This turn ends before it starts
k-3,cy,2026-03-02T11:00:00Z,rep,0,1,Morning
"""


def test_csv_groups_rows_by_call_and_sets_aside_only_the_bad_call(
    sqlite_engine: Engine, write, run, stored
) -> None:
    path = write("turns.csv", CSV)

    report = run(sqlite_engine, path)

    assert (report.new, report.rejected) == (2, 1)
    assert report.rejections[0].line == 5
    assert "call `k-2`" in report.rejections[0].reason
    assert "ends (1 s) before it starts (2 s)" in report.rejections[0].reason
    calls = stored(sqlite_engine)
    assert [(c.external_id, c.source) for c, _ in calls] == [("k-1", "csv"), ("k-3", "csv")]
    assert [t.text for t in calls[0][1]] == ["Hello, Harbor.", "Hi"]


def test_tsv_and_semicolon_csv_are_read(sqlite_engine: Engine, write, run) -> None:
    rows = [
        ["call_id", "rep", "started_at", "speaker", "start", "end", "text"],
        ["t-1", "ana", "2026-03-02T09:30:00Z", "Agent", "0", "1", "Hello"],
    ]
    tsv = write("a.tsv", "\n".join("\t".join(r) for r in rows))
    semicolons = write("b.csv", "\n".join(";".join(r) for r in rows).replace("t-1", "t-2"))
    semicolons.write_text(semicolons.read_text().replace("Hello", "Hello again"))

    report = run(sqlite_engine, tsv, semicolons)

    assert (report.new, report.rejected) == (2, 0), report.rejections


TXT = """# rep: ana@harbor.example
# started_at: 2026-03-02T09:30:00Z
# id: t-1
# channel: phone
# campaign: spring

[00:00:01] Agent: Hi, this is Ana at Harbor.
[00:00:04] Customer: Hello Ana,
I am calling about 10:30 delivery.
[00:01:02.5] Agent: Sure, let me look.
"""


def test_text_transcript_with_header_timestamps_and_wrapped_lines(
    sqlite_engine: Engine, write, run, stored
) -> None:
    path = write("call.txt", TXT)

    report = run(sqlite_engine, path)

    assert report.new == 1, report.rejections
    [(call, turns)] = stored(sqlite_engine)
    assert (call.external_id, call.source, call.meta["campaign"]) == ("t-1", "txt", "spring")
    assert [(t.speaker, t.start_s, t.end_s) for t in turns] == [
        (Speaker.agent, 1.0, None),
        (Speaker.customer, 4.0, None),
        (Speaker.agent, 62.5, None),
    ]
    assert turns[1].text == "Hello Ana, I am calling about 10:30 delivery."
    assert call.duration_s == 62.5


def test_text_without_timestamps_or_id_gets_a_stable_derived_id(
    sqlite_engine: Engine, write, run, stored
) -> None:
    body = "# started_at: 2026-03-02 09:30\nAgent: Hello.\nCustomer: Hi.\n"
    first = write("chat.txt", body)
    settings = IngestSettings()

    report = run(sqlite_engine, first, rep="r-1", settings=settings)
    again = run(sqlite_engine, write("copy-of-chat.txt", body), rep="r-1", settings=settings)

    assert report.new == 1 and again.duplicate == 1
    [(call, turns)] = stored(sqlite_engine)
    assert call.external_id.startswith("chat-") and len(call.external_id) == len("chat-") + 12
    assert [t.start_s for t in turns] == [None, None]


def test_text_line_without_speaker_is_rejected(sqlite_engine: Engine, write, run) -> None:
    path = write("call.txt", "Hello, who is this?\nAgent: Harbor support.\n")

    report = run(sqlite_engine, path, rep="r-1")

    assert "line 1: no speaker label" in report.rejections[0].reason


def test_content_decides_when_the_extension_does_not(
    sqlite_engine: Engine, write, run, stored
) -> None:
    vtt_in_txt = write(
        "r-1__20260302T093000__a.txt", "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>Hi.\n"
    )
    json_without_extension = write("export", json.dumps(_call(5)))

    report = run(sqlite_engine, vtt_in_txt, json_without_extension)

    assert (report.new, report.rejected) == (2, 0), report.rejections
    assert sorted(c.source for c, _ in stored(sqlite_engine)) == ["json", "vtt"]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Agent", Speaker.agent),
        ("agent sam", Speaker.agent),
        ("Agent_2", Speaker.agent),
        ("[Customer]", Speaker.customer),
        ("CALLER", Speaker.customer),
        ("Customer (Ana)", Speaker.customer),
        ("other", Speaker.other),
        ("Agentina", None),
        ("Sam", None),
    ],
)
def test_speaker_labels_follow_the_configured_prefixes(
    label: str, expected: Speaker | None
) -> None:
    settings = IngestSettings()
    resolver = SpeakerResolver(settings.agent_labels, settings.customer_labels)

    assert resolver.resolve(label) is expected


def test_speaker_overrides_and_unknown_as_other() -> None:
    resolver = SpeakerResolver(
        ["agent"], ["customer"], overrides={"Sam": Speaker.agent}, unknown="other"
    )

    assert resolver.resolve("SAM") is Speaker.agent
    assert resolver.resolve("IVR") is Speaker.other
    assert resolver.resolve("customer 2") is Speaker.customer


def test_unicode_text_survives(sqlite_engine: Engine, write, run, stored) -> None:
    call = _call(1)
    call["turns"][0]["text"] = "Grüße aus Köln \u2028 ✓"  # type: ignore[index]
    path = write("call.jsonl", json.dumps(call, ensure_ascii=False) + "\n")

    report = run(sqlite_engine, path)

    assert report.new == 1, report.rejections
    assert stored(sqlite_engine)[0][1][0].text == "Grüße aus Köln \u2028 ✓"


def test_written_files_are_listed_recursively_skipping_hidden_and_quarantine(
    sqlite_engine: Engine, tmp_path: Path, write, run
) -> None:
    write("a/b/one.json", json.dumps(_call(1)))
    write("a/.hidden/two.json", json.dumps(_call(2)))
    write("a/.three.json", json.dumps(_call(3)))
    quarantined = tmp_path / "in" / "data" / "rejected" / "four.json"
    quarantined.parent.mkdir(parents=True)
    quarantined.write_text(json.dumps(_call(4)))
    from ingest import ingest_paths

    report = ingest_paths(
        sqlite_engine,
        [tmp_path / "in"],
        settings=IngestSettings(),
        data_dir=tmp_path / "in" / "data",
    )

    assert (report.files, report.new) == (1, 1)
