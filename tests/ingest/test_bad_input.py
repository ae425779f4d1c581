"""Bad input never stops a batch and loses nothing: each kind is set aside with its reason."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from config.settings import IngestSettings

GOOD = {
    "external_id": "good-1",
    "rep": "r-1",
    "started_at": "2026-03-02T09:30:00Z",
    "turns": [
        {"speaker": "agent", "start_s": 0.0, "end_s": 2.0, "text": "Hello, Harbor support."},
        {"speaker": "customer", "start_s": 2.5, "end_s": 4.0, "text": "Hi, my parcel is late."},
    ],
}


def _with_turns(*turns: dict[str, object]) -> str:
    return json.dumps({**GOOD, "external_id": "bad-1", "turns": list(turns)})


_CAFE = json.dumps({**GOOD, "meta": {"note": "caf\u00e9"}}, ensure_ascii=False).encode()
CUT_IN_A_CHARACTER = _CAFE[: _CAFE.index(b"\xc3\xa9") + 1]
TURN = {"speaker": "agent", "start_s": 1.0, "end_s": 2.0, "text": "Fine."}
VTT_HEAD = "WEBVTT\nNOTE rep=r-1 started_at=2026-03-02T09:30:00Z\n\n"

BAD_INPUT = [
    pytest.param(
        "truncated.json",
        json.dumps(GOOD)[:-40].encode(),
        "parse",
        "the file ends early; is it truncated?",
        id="truncated-json",
    ),
    pytest.param(
        "truncated.vtt",
        (VTT_HEAD + "00:00.000 --> 00:01.000\n<v Agent>Hi.\n\n00:01.000 --> 00:02.000\n").encode(),
        "bad_turn",
        "cue at line 7 has no text (is the file truncated?)",
        id="truncated-vtt",
    ),
    pytest.param(
        "truncated.srt",
        b"1\n00:00:00,000 --> 00:00:01,000\nAgent: Hi.\n\n2\n",
        "parse",
        "line 5: the subtitle has no timing line (is the file truncated?)",
        id="truncated-srt",
    ),
    pytest.param(
        "cut-in-a-character.json",
        CUT_IN_A_CHARACTER,
        "encoding",
        f"not valid UTF-8 at byte {len(CUT_IN_A_CHARACTER) - 1} (0xc3): unexpected end of data",
        id="truncated-utf8",
    ),
    pytest.param(
        "latin1.txt",
        "# rep: r-1\n# started_at: 2026-03-02T09:30\nAgent: Caf\u00e9?\n".encode("latin-1"),
        "encoding",
        "not valid UTF-8 at byte 52 (0xe9)",
        id="mis-encoded",
    ),
    pytest.param(
        "utf16-no-bom.json",
        json.dumps(GOOD).encode("utf-16-le"),
        "encoding",
        "contains a NUL byte at byte 1",
        id="utf16-without-bom",
    ),
    pytest.param("empty.json", b"", "empty", "the file is empty", id="empty"),
    pytest.param("blank.vtt", b" \n\n \t\n", "empty", "the file is empty", id="whitespace-only"),
    pytest.param("list.json", b"[ ]", "empty", "the file holds an empty list", id="empty-list"),
    pytest.param(
        "notes.json", b"hello there", "parse", "not JSON: a call file starts with", id="not-json"
    ),
    pytest.param(
        "garbage.srt",
        b"this is not\na subtitle file\n",
        "parse",
        "expected a subtitle number, then a timing line",
        id="unparseable-srt",
    ),
    pytest.param(
        "novtt.vtt", b"Agent: hi\n", "parse", "the first line must be `WEBVTT`", id="not-vtt"
    ),
    pytest.param(
        "times.vtt",
        (VTT_HEAD + "00:00.000 --> soon\n<v Agent>Hi.\n").encode(),
        "parse",
        "line 4: cannot read the times in `00:00.000 --> soon`",
        id="bad-cue-time",
    ),
    pytest.param(
        "no-time.json",
        json.dumps({k: v for k, v in GOOD.items() if k != "started_at"}).encode(),
        "missing_field",
        "call `good-1`: missing required field `started_at`",
        id="missing-started-at",
    ),
    pytest.param(
        "no-id.json",
        json.dumps({k: v for k, v in GOOD.items() if k != "external_id"}).encode(),
        "missing_field",
        "missing required field `external_id`",
        id="missing-id",
    ),
    pytest.param(
        "no-text.json",
        _with_turns(TURN, {"speaker": "customer", "start_s": 2.0, "end_s": 3.0}).encode(),
        "missing_field",
        "call `bad-1`: turn 2: missing required field `text`",
        id="missing-turn-text",
    ),
    pytest.param(
        "bad-time.json",
        json.dumps({**GOOD, "started_at": "last tuesday"}).encode(),
        "bad_field",
        "`started_at` value `last tuesday` is not an ISO-8601 time",
        id="bad-started-at",
    ),
    pytest.param(
        "no-columns.csv",
        b"call_id,rep,started_at,who,text\nk,r-1,2026-03-02T09:30:00Z,Agent,Hi\n",
        "missing_field",
        "the CSV has no `speaker` column (columns: call_id, rep, started_at, who, text)",
        id="csv-missing-column",
    ),
    pytest.param(
        "reversed.json",
        _with_turns(TURN, {**TURN, "start_s": 3.0, "end_s": 2.5}).encode(),
        "bad_turn",
        "call `bad-1`: turn 2 ends (2.5 s) before it starts (3 s)",
        id="end-before-start",
    ),
    pytest.param(
        "negative.json",
        _with_turns({**TURN, "start_s": -1.0}).encode(),
        "bad_turn",
        "turn 1 has a negative or invalid start time (-1.0)",
        id="negative-time",
    ),
    pytest.param(
        "blank-turn.json",
        _with_turns(TURN, {**TURN, "text": "   "}).encode(),
        "bad_turn",
        "turn 2 has no text",
        id="empty-turn-text",
    ),
    pytest.param(
        "no-turns.json",
        _with_turns().encode(),
        "missing_field",
        "the call has no turns",
        id="no-turns",
    ),
    pytest.param(
        "stranger.json",
        _with_turns({**TURN, "speaker": "Sam"}).encode(),
        "unknown_speaker",
        "speaker `Sam` is neither an agent nor a customer label",
        id="unknown-speaker",
    ),
    pytest.param(
        "call.mp3",
        b"ID3\x03\x00\x00\x00\x00\x00\x00\xff\xfb",
        "unsupported",
        "`.mp3` files are not a transcript format coachloop reads",
        id="unsupported",
    ),
]


@pytest.mark.parametrize(("name", "content", "kind", "reason"), BAD_INPUT)
def test_bad_file_is_set_aside_and_the_batch_goes_on(
    sqlite_engine: Engine,
    tmp_path: Path,
    write,
    run,
    stored,
    rejected_rows,
    name: str,
    content: bytes,
    kind: str,
    reason: str,
) -> None:
    bad = write(name, content)
    good = write("zz-good.json", json.dumps(GOOD))

    report = run(sqlite_engine, bad, good)

    assert (report.new, report.rejected) == (1, 1), report.rejections
    [rejection] = report.rejections
    assert rejection.kind == kind
    assert reason in rejection.reason
    assert [c.external_id for c, _ in stored(sqlite_engine)] == ["good-1"]
    copy = tmp_path / "data" / "rejected" / name
    assert rejection.quarantined_to == copy
    assert copy.read_bytes() == content
    reason_text = (copy.parent / f"{name}.reason.txt").read_text(encoding="utf-8")
    assert reason_text == f"{bad}\n{rejection.reason}\n"
    [row] = rejected_rows(sqlite_engine)
    assert (row.path, row.reason, row.quarantined_to) == (str(bad), rejection.reason, str(copy))


def test_oversized_file_is_set_aside_without_being_read(
    sqlite_engine: Engine, tmp_path: Path, write, run
) -> None:
    big = write("big.json", json.dumps({**GOOD, "meta": {"pad": "x" * 2000}}))
    good = write("good.json", json.dumps(GOOD))

    report = run(sqlite_engine, big, good, settings=IngestSettings(max_file_bytes=1000))

    assert (report.new, report.rejected) == (1, 1)
    assert report.rejections[0].kind == "too_large"
    assert "over the 1,000 byte limit" in report.rejections[0].reason
    assert (tmp_path / "data" / "rejected" / "big.json").exists()


@pytest.mark.parametrize(
    "encoding", ["utf-8-sig", "utf-16", "utf-16-be-bom", "utf-16-le-bom", "utf-32"]
)
def test_byte_order_marks_are_accepted(
    sqlite_engine: Engine, write, run, stored, encoding: str
) -> None:
    text = "# rep: r-1\n# started_at: 2026-03-02T09:30\nAgent: Grüße!\nCustomer: Hallo.\n"
    if encoding == "utf-16-be-bom":
        content = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    elif encoding == "utf-16-le-bom":
        content = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    else:
        content = text.encode(encoding)
    path = write("call.txt", content)

    report = run(sqlite_engine, path)

    assert report.new == 1, report.rejections
    assert stored(sqlite_engine)[0][1][0].text == "Grüße!"


def test_missing_path_is_reported_and_the_rest_go_through(
    sqlite_engine: Engine, tmp_path: Path, write, run, rejected_rows
) -> None:
    good = write("good.json", json.dumps(GOOD))

    report = run(sqlite_engine, tmp_path / "nowhere", good)

    assert (report.new, report.rejected) == (1, 1)
    assert report.rejections[0].kind == "missing"
    assert report.rejections[0].quarantined_to is None
    assert rejected_rows(sqlite_engine)[0].path == str(tmp_path / "nowhere")


def test_bad_files_with_the_same_name_are_kept_apart(
    sqlite_engine: Engine, tmp_path: Path, write, run
) -> None:
    first = write("a/call.json", b"{")
    second = write("b/call.json", b"[1,")

    report = run(sqlite_engine, first, second)
    again = run(sqlite_engine, first)

    copies = sorted(p.name for p in (tmp_path / "data" / "rejected").iterdir())
    assert copies == ["call-1.json", "call-1.json.reason.txt", "call.json", "call.json.reason.txt"]
    assert report.rejected == 2
    assert again.rejections[0].quarantined_to == tmp_path / "data" / "rejected" / "call.json"
