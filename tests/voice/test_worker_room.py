"""The room side of the worker that runs without WebRTC: the events it sends the rep, the end
message it listens for, and a second job in a room whose session already ran."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from livekit import rtc

from config.rubric import RubricLibrary
from evaluators.embeddings import SentenceEncoder
from scenarios import PracticeDriver, PracticeResult, ScenarioLibrary
from tests.voice.calls import (  # noqa: F401 (fixtures)
    encoder_fixture,
    library_fixture,
    practice_driver,
    rubrics_fixture,
)
from voice.livekit_worker import RoomEvents, _is_end, _resume_interrupted
from voice.rooms import EVENTS_TOPIC, PracticeJob, new_room, ticket_for

SCENARIO = "support-double-charge"


class FakeParticipant:
    def __init__(self, room: FakeRoom) -> None:
        self._room = room

    async def send_text(self, text: str, **options: Any) -> None:
        if self._room.failing:
            raise ConnectionError("data channel closed")
        self._room.sent.append((text, options))


class FakeRoom:
    """The two things `RoomEvents` uses of an `rtc.Room`, recording what is sent."""

    name = "practice-a7-0123456789ab"

    def __init__(self, *, connected: bool = True, failing: bool = False) -> None:
        self.connected = connected
        self.failing = failing
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.local_participant = FakeParticipant(self)

    def isconnected(self) -> bool:
        return self.connected

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text, _ in self.sent]


def events_for(room: FakeRoom, identity: str = "e-1042") -> RoomEvents:
    return RoomEvents(cast(rtc.Room, room), identity)


@pytest.fixture
async def driver(
    tmp_path: Path, library: ScenarioLibrary, rubrics: RubricLibrary, encoder: SentenceEncoder
) -> AsyncIterator[PracticeDriver]:
    async with practice_driver(tmp_path / "practice.sqlite", library, rubrics, encoder, None) as d:
        yield d


def job(assignment_id: int = 7) -> PracticeJob:
    room = new_room("practice", assignment_id)
    return PracticeJob(room=room, ticket=ticket_for(room, rep="e-1042", scenario=SCENARIO))


async def test_errors_go_to_the_rep_only_on_the_practice_topic() -> None:
    room = FakeRoom()

    await events_for(room).error("No scenario `x`")

    assert room.events() == [{"type": "error", "message": "No scenario `x`"}]
    _, options = room.sent[0]
    assert options["topic"] == EVENTS_TOPIC
    assert options["destination_identities"] == ["e-1042"]
    assert options["compress"] is False


async def test_nothing_is_sent_to_a_closed_room_and_a_failed_send_is_not_raised() -> None:
    closed, failing = FakeRoom(connected=False), FakeRoom(failing=True)

    await events_for(closed).error("late")
    await events_for(failing).error("late")

    assert closed.sent == [] and failing.sent == []


@pytest.mark.parametrize(
    ("data", "ends"),
    [
        (b'{"type": "end"}', True),
        (b'{"type": "hello"}', False),
        (b"end", False),
        (b"\xff\xfe", False),
        (b"[]", False),
    ],
)
def test_only_an_end_message_ends_the_session(data: bytes, ends: bool) -> None:
    assert _is_end(data) is ends


async def test_a_room_without_a_session_yet_starts_one(driver: PracticeDriver) -> None:
    room = FakeRoom()

    resumed = await _resume_interrupted(driver, job(), events_for(room))

    assert resumed is False
    assert room.sent == []


async def test_a_second_job_in_the_room_scores_what_was_said(driver: PracticeDriver) -> None:
    found = job()
    await driver.start_session(SCENARIO, session_id=found.room.session_id, channel="voice")
    await driver.send_rep_turn(found.room.session_id, "I'm sorry about the double charge.")
    room = FakeRoom()

    resumed = await _resume_interrupted(driver, found, events_for(room))

    assert resumed is True
    [event] = room.events()
    assert event["type"] == "feedback"
    result = PracticeResult.model_validate(event["result"])
    assert result.session_id == found.room.session_id
    assert result.scenario == SCENARIO
    assert result.rep_turns == 1
