"""Idempotence, unknown reps, batching and resuming, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, select as sm_select

from config.settings import IngestSettings
from ingest import ParsedCall, ParsedTurn, save as save_module, save_calls
from store.models import Interaction, InteractionKind, Person, Speaker, Team, Turn

START = "2026-03-02T09:30:00Z"


def _call(
    n: int, *, rep: str = "r-1", team: str | None = None, turns: int = 3
) -> dict[str, object]:
    call: dict[str, object] = {
        "external_id": f"c-{n}",
        "rep": rep,
        "started_at": START,
        "turns": [
            {
                "speaker": "agent" if i % 2 == 0 else "customer",
                "start_s": float(i),
                "end_s": i + 0.5,
                "text": f"Call {n}, turn {i}.",
            }
            for i in range(turns)
        ],
    }
    if team:
        call["team"] = team
    return call


def _count(engine: Engine, table: type) -> int:
    with Session(engine) as session:
        return int(session.execute(select(func.count()).select_from(table)).scalar_one())


def test_the_same_files_twice_change_nothing(db_engine: Engine, write, run) -> None:
    jsonl = write("calls.jsonl", "\n".join(json.dumps(_call(n)) for n in range(5)) + "\n")
    vtt = write(
        "r-2__20260302T093000__v-1.vtt",
        "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>Hi.\n\n00:01.000 --> 00:02.000\n<v Customer>Yo.\n",
    )

    first = run(db_engine, jsonl, vtt)
    second = run(db_engine, jsonl, vtt)

    assert (first.new, first.duplicate, first.rejected) == (6, 0, 0)
    assert (second.new, second.duplicate, second.rejected) == (0, 6, 0)
    assert _count(db_engine, Interaction) == 6
    assert _count(db_engine, Turn) == 5 * 3 + 2


def test_the_same_call_under_another_file_name_is_a_duplicate(
    db_engine: Engine, tmp_path: Path, write, run
) -> None:
    body = "WEBVTT\n\n00:00.000 --> 00:01.000\n<v Agent>Hello.\n\n00:01.000 --> 00:02.000\n<v Customer>Hi.\n"
    original = write("r-1__20260302T093000__a-1.vtt", body)
    renamed = write("r-1__20260302T093000__copy-of-a-1.vtt", body)
    reformatted = write(
        "elsewhere.json",
        json.dumps(
            {
                "external_id": "x-9",
                "rep": "r-1",
                "started_at": START,
                "turns": [
                    {"speaker": "Agent", "text": "  Hello. "},
                    {"speaker": "customer", "text": "Hi."},
                ],
            }
        ),
    )

    first = run(db_engine, original)
    again = run(db_engine, renamed, reformatted)

    assert first.new == 1
    assert (again.new, again.duplicate) == (0, 2)
    assert _count(db_engine, Interaction) == 1


def test_same_id_with_different_turns_is_a_conflict_not_an_overwrite(
    db_engine: Engine, write, run, stored
) -> None:
    run(db_engine, write("a.json", json.dumps(_call(1))))
    changed = _call(1)
    changed["turns"][0]["text"] = "Something else entirely."  # type: ignore[index]

    report = run(db_engine, write("b.json", json.dumps(changed)))

    assert (report.new, report.rejected) == (0, 1)
    assert report.rejections[0].kind == "conflict"
    assert "call `c-1` from `json` is already stored" in report.rejections[0].reason
    assert stored(db_engine)[0][1][0].text == "Call 1, turn 0."


def test_unknown_reps_are_created_with_the_given_team(
    db_engine: Engine, write, run, people
) -> None:
    path = write(
        "calls.jsonl",
        "\n".join(
            json.dumps(c)
            for c in [
                _call(1, rep="dee@harbor.example", team="west"),
                _call(2, rep="dee@harbor.example"),
                _call(3, rep="r-7"),
            ]
        ),
    )

    report = run(db_engine, path)

    assert report.new == 3
    dee, r7 = people(db_engine)
    assert (dee.external_id, dee.name, dee.email) == ("dee@harbor.example",) * 3
    assert (r7.external_id, r7.email, r7.team_id) == ("r-7", None, None)
    with Session(db_engine) as session:
        west = session.exec(sm_select(Team)).one()
        teams = session.exec(sm_select(Interaction.team_id).order_by(Interaction.id)).all()
    assert dee.team_id == west.id and west.slug == "west"
    assert list(teams) == [west.id, west.id, None]


def test_unknown_reps_are_rejected_when_configured(
    db_engine: Engine, tmp_path: Path, write, run, rejected_rows
) -> None:
    with Session(db_engine) as session:
        session.add(Person(external_id="r-1", name="Ana Ortiz", email="Ana@Harbor.example"))
        session.commit()
    path = write(
        "calls.jsonl",
        "\n".join(
            json.dumps(c)
            for c in [_call(1, rep="ana@harbor.example"), _call(2, rep="ghost"), _call(3)]
        ),
    )

    report = run(db_engine, path, settings=IngestSettings(unknown_reps="reject"))

    assert (report.new, report.rejected) == (2, 1)
    assert report.rejections[0].kind == "unknown_rep"
    assert "rep `ghost` is not in the organisation" in report.rejections[0].reason
    assert "COACHLOOP_INGEST__UNKNOWN_REPS=create" in report.rejections[0].reason
    assert _count(db_engine, Person) == 1
    assert (tmp_path / "data" / "rejected" / "calls.jsonl").exists()
    assert [r.reason for r in rejected_rows(db_engine)] == [report.rejections[0].reason]


def test_unknown_team_is_rejected_when_reps_are(db_engine: Engine, write, run) -> None:
    with Session(db_engine) as session:
        session.add(Person(external_id="r-1", name="Ana"))
        session.commit()

    report = run(
        db_engine,
        write("a.json", json.dumps(_call(1, team="nowhere"))),
        settings=IngestSettings(unknown_reps="reject"),
    )

    assert report.rejections[0].kind == "unknown_team"
    assert "team `nowhere` does not exist" in report.rejections[0].reason


def test_a_crash_mid_run_resumes_without_duplicates(
    db_engine: Engine, tmp_path: Path, write, run
) -> None:
    paths = [write(f"calls/{n:02d}.json", json.dumps(_call(n))) for n in range(20)]

    def crash_after_twelve(done: int, total: int) -> None:
        if done == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(db_engine, tmp_path / "in" / "calls", batch_size=5, progress=crash_after_twelve)
    stored_before = _count(db_engine, Interaction)
    resumed = run(db_engine, tmp_path / "in" / "calls", batch_size=5)

    assert stored_before == 10  # two full batches were committed; the third was not
    assert (resumed.new, resumed.duplicate, resumed.rejected) == (10, 10, 0)
    assert _count(db_engine, Interaction) == len(paths)
    assert _count(db_engine, Turn) == len(paths) * 3


def test_progress_counts_files(db_engine: Engine, tmp_path: Path, write, run) -> None:
    for n in range(4):
        write(f"d/{n}.json", json.dumps(_call(n)))
    seen: list[tuple[int, int]] = []

    run(db_engine, tmp_path / "in" / "d", progress=lambda done, total: seen.append((done, total)))

    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_batch_racing_another_writer_is_retried_file_by_file(
    db_engine: Engine, write, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(db_engine, write("first.json", json.dumps(_call(1))))
    real = save_module._lookup_existing
    calls = {"n": 0}

    def stale_on_first_use(*args, **kwargs):  # as if another writer committed after the look-up
        calls["n"] += 1
        return ({}, {}) if calls["n"] == 1 else real(*args, **kwargs)

    monkeypatch.setattr(save_module, "_lookup_existing", stale_on_first_use)
    report = run(
        db_engine,
        write("again.json", json.dumps(_call(1))),
        write("new.json", json.dumps(_call(2))),
    )

    assert (report.new, report.duplicate, report.rejected) == (1, 1, 0)
    assert _count(db_engine, Interaction) == 2


def _parsed(n: int, **changes: object) -> ParsedCall:
    fields: dict[str, object] = {
        "external_id": f"p-{n}",
        "rep": "r-1",
        "started_at": datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        "turns": [
            ParsedTurn(Speaker.agent, 0.0, 2.0, f"Practice {n}: how can I help?"),
            ParsedTurn(Speaker.customer, 2.5, 4.0, "I was charged twice."),
        ],
        "source": "practice",
        "kind": InteractionKind.practice,
    }
    fields.update(changes)
    return ParsedCall(**fields)


def test_save_calls_in_a_callers_session(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        result = save_calls(session, [_parsed(1), _parsed(2), _parsed(1)])
        session.commit()
        kinds = session.exec(sm_select(Interaction.kind)).all()

    assert [o.status for o in result.outcomes] == ["new", "new", "duplicate"]
    assert result.outcomes[2].interaction_id == result.outcomes[0].interaction_id
    assert kinds == [InteractionKind.practice, InteractionKind.practice]


def test_save_calls_sets_aside_invalid_calls_and_stores_the_rest(db_engine: Engine) -> None:
    naive = _parsed(1, started_at=datetime(2026, 3, 2, 9, 30))
    reversed_turn = _parsed(2, turns=[ParsedTurn(Speaker.agent, 5.0, 1.0, "Hi")])
    bad_channel = _parsed(3, channel="fax", team="Not A Slug")

    result = save_calls(db_engine, [naive, reversed_turn, bad_channel, _parsed(4)], chunk_size=2)

    assert [o.status for o in result.outcomes] == ["rejected", "rejected", "rejected", "new"]
    assert "`started_at` has no time zone" in (result.outcomes[0].reason or "")
    assert "turn 1 ends (1 s) before it starts (5 s)" in (result.outcomes[1].reason or "")
    assert "channel `fax` is not one of" in (result.outcomes[2].reason or "")
    assert "team `Not A Slug` is not a slug" in (result.outcomes[2].reason or "")
    assert result.new_ids == [result.outcomes[3].interaction_id]


def test_large_batches_store_every_turn_in_order(db_engine: Engine, write, run, stored) -> None:
    lines = [json.dumps(_call(n, turns=40)) for n in range(120)]
    path = write("big.jsonl", "\n".join(lines))

    report = run(db_engine, path, batch_size=50)

    assert report.new == 120
    calls = stored(db_engine)
    assert all([t.idx for t in turns] == list(range(40)) for _, turns in calls)
    assert calls[57][1][39].text == "Call 57, turn 39."


def test_rejected_copies_are_reused_on_a_re_run(
    db_engine: Engine, tmp_path: Path, write, run
) -> None:
    bad = write("bad.json", b"{")

    run(db_engine, bad)
    run(db_engine, bad)

    names = sorted(p.name for p in (tmp_path / "data" / "rejected").iterdir())
    assert names == ["bad.json", "bad.json.reason.txt"]


def test_many_rejections_are_committed_in_batches_too(
    db_engine: Engine, tmp_path: Path, write, run, rejected_rows
) -> None:
    for n in range(5):
        write(f"bad/{n}.json", b"{")
    write("bad/ok.json", json.dumps(_call(1)))

    report = run(db_engine, tmp_path / "in" / "bad", batch_size=2)

    assert (report.new, report.rejected) == (1, 5)
    assert len(rejected_rows(db_engine)) == 5
