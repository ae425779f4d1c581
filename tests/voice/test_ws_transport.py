"""The WebSocket voice transport end to end: the real web app under uvicorn on 127.0.0.1, a
signed-in rep's socket streaming speech in real time, the persona's audio and the transcript
coming back, and the feedback at the end; sign-in, origin and ownership are enforced."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from livekit.agents.vad import VAD
from sqlmodel import Session
from websockets.asyncio.client import ClientConnection

from config.rubric import RubricLibrary
from evaluators.embeddings import SentenceEncoder
from scenarios import ScenarioLibrary
from store.models import Assignment, Interaction
from tests.voice.audio import overlap
from tests.voice.calls import (  # noqa: F401 (fixtures)
    RATE,
    Microphone,
    VoiceSite,
    assign,
    encoder_fixture,
    engines_fixture,
    library_fixture,
    rubrics_fixture,
    sign_in,
    speech_at,
    vad_fixture,
    voice_site,
)
from tests.web.browser import live_server
from voice import SpeechAudio, VoiceEngines

SCENARIO = "support-double-charge"
REP_TURN = "I'm sorry about that. Let me look at your account and check the charges for you."


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    engines: VoiceEngines,
    vad: VAD,
    library: ScenarioLibrary,
    rubrics: RubricLibrary,
    encoder: SentenceEncoder,
) -> VoiceSite:
    return voice_site(
        tmp_path_factory.mktemp("voice-site"),
        engines=engines,
        vad=vad,
        library=library,
        rubrics=rubrics,
        encoder=encoder,
    )


@pytest.fixture(scope="module")
def base_url(site: VoiceSite) -> Iterator[str]:
    with live_server(site.app) as url:
        yield url


def socket_url(base_url: str, path: str) -> str:
    return "ws" + base_url.removeprefix("http") + path


@dataclass
class Heard:
    """Everything the server sent on one socket."""

    events: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0
    audio_messages: int = 0
    closed: int | None = 1000

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == kind and all(e.get(k) == v for k, v in match.items())
        ]


async def listen(socket: ClientConnection, heard: Heard) -> None:
    try:
        async for message in socket:
            if isinstance(message, bytes):
                heard.audio_bytes += len(message)
                heard.audio_messages += 1
            else:
                heard.events.append(json.loads(message))
    except websockets.ConnectionClosed as closed:
        heard.closed = closed.rcvd.code if closed.rcvd else None


async def until(condition: Callable[[], bool], what: str, guard_s: float = 60) -> None:
    try:
        async with asyncio.timeout(guard_s):
            while not condition():  # noqa: ASYNC110 (polls what the listener collected)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_rep_talks_to_the_persona_and_gets_feedback(
    site: VoiceSite, base_url: str, say: Callable[[str], SpeechAudio]
) -> None:
    assignment_id = assign(site.engine, site.reps["rep-1"], SCENARIO)
    cookie = sign_in(base_url, "rep-1")
    url = socket_url(base_url, f"/practice/voice/{SCENARIO}/socket?assignment={assignment_id}")
    heard = Heard()
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie, "Origin": base_url}
    ) as socket:
        await socket.send(json.dumps({"type": "hello", "sample_rate": RATE}))
        listener = asyncio.create_task(listen(socket, heard))
        mic = Microphone(socket.send)
        mic.start()
        await until(lambda: bool(heard.of("ready")), "ready")
        [ready] = heard.of("ready")
        await until(lambda: bool(heard.of("transcript", speaker="persona", final=True)), "opening")
        await until(lambda: heard.of("state")[-1].get("agent") == "listening", "the rep's turn")
        opening_audio = heard.audio_bytes
        mic.say(speech_at(say(REP_TURN)))
        await until(
            lambda: len(heard.of("transcript", speaker="persona", final=True)) == 2, "reply"
        )
        await socket.send(json.dumps({"type": "end"}))
        await until(lambda: bool(heard.of("feedback")), "the feedback")
        await asyncio.wait_for(listener, 30)
        await mic.stop()

    assert ready["sample_rate"] == 22_050 and ready["input_sample_rate"] == RATE
    assert ready["persona"] == "Margaret Okafor" and ready["briefing"]
    # the opening and the reply were spoken as audio, 16-bit mono at the announced rate
    assert opening_audio > 2 * 22_050 * 2
    assert heard.audio_bytes > opening_audio + 22_050
    [rep] = heard.of("transcript", speaker="rep")
    assert overlap(REP_TURN, rep["text"]) >= 0.8
    assert rep["metrics"]["end_of_turn_delay"] >= 0
    reply = heard.of("transcript", speaker="persona", final=True)[1]
    assert reply["metrics"]["e2e_latency"] > 0
    pieces = "".join(e["text"] for e in heard.of("transcript", speaker="persona", final=False))
    assert reply["text"] in pieces
    assert {"speaking", "listening"} <= {e.get("agent") for e in heard.of("state")}
    [feedback] = heard.of("feedback")
    result = feedback["result"]
    assert result["end_reason"] == "ended by the rep" and result["feedback"]
    assert result["unscored_reason"] is None
    assert result["assignment_id"] == assignment_id
    assert heard.events[-1] == {"type": "ended"}
    with Session(site.engine) as session:
        stored = session.get(Interaction, result["interaction_id"])
        assignment = session.get(Assignment, assignment_id)
    assert stored is not None and stored.channel == "voice"
    assert stored.rep_id == site.reps["rep-1"]
    assert assignment is not None and assignment.status == "completed"


async def refused(url: str, headers: dict[str, str]) -> tuple[int | None, str]:
    """Connect and read until the server closes; the close code and reason."""
    try:
        async with websockets.connect(url, additional_headers=headers) as socket:
            async for _ in socket:
                pass
    except websockets.ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), (
            closed.rcvd.reason if closed.rcvd else ""
        )
    except websockets.InvalidStatus as exc:
        return exc.response.status_code, ""
    return None, ""


async def test_a_socket_needs_a_signed_in_rep_from_this_site(
    site: VoiceSite, base_url: str
) -> None:
    url = socket_url(base_url, f"/practice/voice/{SCENARIO}/socket")
    cookie = sign_in(base_url, "rep-1")

    anonymous = await refused(url, {"Origin": base_url})
    elsewhere = await refused(url, {"Cookie": cookie, "Origin": "https://evil.example"})

    assert anonymous == (1008, "Sign in to practise")
    assert elsewhere == (1008, "This page is not from coachloop")


async def test_a_rep_cannot_practise_someone_elses_assignment(
    site: VoiceSite, base_url: str
) -> None:
    theirs = assign(site.engine, site.reps["rep-2"], SCENARIO)
    cookie = sign_in(base_url, "rep-1")
    url = socket_url(base_url, f"/practice/voice/{SCENARIO}/socket?assignment={theirs}")

    code, reason = await refused(url, {"Cookie": cookie, "Origin": base_url})

    assert (code, reason) == (1008, "This practice assignment is not yours")
    with Session(site.engine) as session:
        assignment = session.get(Assignment, theirs)
    assert assignment is not None and assignment.status == "open"


async def test_bad_messages_get_an_error_that_names_the_problem(
    site: VoiceSite, base_url: str
) -> None:
    cookie = sign_in(base_url, "rep-2")
    url = socket_url(base_url, f"/practice/voice/{SCENARIO}/socket")
    heard = Heard()
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie, "Origin": base_url}
    ) as socket:
        await socket.send(json.dumps({"type": "hello", "sample_rate": 3}))
        await asyncio.wait_for(listen(socket, heard), 30)

    [error] = heard.of("error")
    assert "sample_rate" in error["message"] and "8000" in error["message"]
    assert heard.events[-1] == {"type": "ended"}


async def test_an_unknown_scenario_is_an_error_not_a_session(
    site: VoiceSite, base_url: str
) -> None:
    cookie = sign_in(base_url, "rep-2")
    url = socket_url(base_url, "/practice/voice/no-such-scenario/socket")
    heard = Heard()
    async with websockets.connect(
        url, additional_headers={"Cookie": cookie, "Origin": base_url}
    ) as socket:
        await asyncio.wait_for(listen(socket, heard), 30)

    [error] = heard.of("error")
    assert "no-such-scenario" in error["message"]
    assert heard.closed == 1008


def test_the_voice_page_links_and_shows_the_briefing(site: VoiceSite, base_url: str) -> None:
    import httpx

    cookie = sign_in(base_url, "rep-1")
    with httpx.Client(base_url=base_url, headers={"Cookie": cookie}) as client:
        home = client.get("/practice")
        page = client.get(f"/practice/voice/{SCENARIO}")
        missing = client.get("/practice/voice/no-such-scenario")
        picked = client.get("/practice/voice", params={"scenario": SCENARIO})

    assert 'action="/practice/voice"' in home.text
    assert page.status_code == 200
    assert f'data-socket="/practice/voice/{SCENARIO}/socket"' in page.text
    assert 'data-available="yes"' in page.text and "Margaret Okafor" in page.text
    assert missing.status_code == 404
    assert picked.status_code == 303
    assert picked.headers["location"] == f"/practice/voice/{SCENARIO}"
