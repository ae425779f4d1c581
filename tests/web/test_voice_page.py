"""The voice practice page in headless Chromium over the WebSocket transport, with a WAV file
(speech made by the project's own Piper voice) as the microphone: the page connects, the
persona answers with audio, the live transcript fills in and the feedback appears."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from livekit.plugins import silero

from config.company import load_company
from config.rubric import RubricLibrary
from config.settings import VoiceSettings
from evaluators.embeddings import SentenceEncoder
from personas import PersonaLibrary
from scenarios import ScenarioLibrary
from tests.voice.calls import PASSWORD, VoiceSite, assign, silence, speech_at, voice_site
from tests.web.browser import chromium, live_server, require_chromium, shoot
from voice import VoiceEngines, VoiceStyle
from voice.engines import load_synthesizer, load_transcriber

if TYPE_CHECKING:
    from playwright.sync_api import Page

SCENARIO = "support-double-charge"
REP_TURN = "I'm sorry about that. Let me look at your account and check the charges for you."


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> VoiceSite:
    require_chromium()
    data_dir = tmp_path_factory.mktemp("voice-page")
    company = load_company()
    return voice_site(
        data_dir,
        engines=VoiceEngines(
            transcriber=load_transcriber(VoiceSettings(), data_dir, model="tiny.en"),
            synthesizer=load_synthesizer(VoiceSettings()),
        ),
        vad=silero.VAD.load(),
        library=ScenarioLibrary.from_dir(company, PersonaLibrary.from_dir(company)),
        rubrics=RubricLibrary.from_dir(),
        encoder=SentenceEncoder(),
    )


@pytest.fixture(scope="module")
def microphone_wav(site: VoiceSite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the fake microphone plays, on a loop: quiet while the persona opens, then the rep."""
    import wave

    engines = site.app.state.voice.engines
    speech = engines.synthesizer.synthesize_blocking(REP_TURN, style=VoiceStyle(variation=0.0))
    audio = silence(9.0) + speech_at(speech) + silence(12.0)
    path = tmp_path_factory.mktemp("microphone") / "rep.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(audio)
    return path


@pytest.fixture(scope="module")
def base_url(site: VoiceSite) -> Iterator[str]:
    with live_server(site.app) as url:
        yield url


def until(page: Page, condition: Callable[[], bool], guard_s: float = 60) -> None:
    """Poll the page from the test (the page's CSP forbids evaluating strings in it)."""
    for _ in range(int(guard_s / 0.1)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("timed out waiting for the page")


def test_a_rep_practises_by_voice_on_a_phone(
    site: VoiceSite, base_url: str, microphone_wav: Path
) -> None:
    assignment_id = assign(site.engine, site.reps["rep-1"], SCENARIO)
    flags = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with chromium(flags) as browser:
        context = browser.new_context(
            base_url=base_url,
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
            permissions=["microphone"],
        )
        context.set_default_timeout(60_000)
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))

        page.goto("/login")
        page.get_by_label("Employee id or e-mail").fill("rep-1")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/login" not in url)

        page.goto("/practice")
        page.get_by_role("link", name="Practise by voice").first.click()
        page.wait_for_url(f"**/practice/voice/{SCENARIO}?assignment={assignment_id}")
        assert page.locator("#briefing").inner_text().strip()

        page.get_by_role("button", name="Start the call").click()
        practice = page.locator("#voice-practice")
        persona_lines = page.locator("#voice-log li.chat-persona:not(.interim)")
        until(page, lambda: float(practice.get_attribute("data-persona-audio") or 0) > 2)
        page.wait_for_selector("#voice-log li.chat-rep")
        until(page, lambda: persona_lines.count() >= 2)
        heard_before_end = float(practice.get_attribute("data-persona-audio") or 0)
        shoot(page, "voice-practice-call")

        page.get_by_role("button", name="End and get feedback").click()
        page.wait_for_selector("#voice-feedback:not([hidden])")
        until(page, lambda: practice.get_attribute("data-feedback") == "shown")
        rep_lines = page.locator("#voice-log li.chat-rep p").all_inner_texts()
        scores = page.locator("#voice-scores .score").count()
        outcome = page.locator("#voice-outcome").inner_text()
        shoot(page, "voice-practice-feedback")
        context.close()

    assert problems == []
    assert heard_before_end > 4.0  # the opening and the answer were played
    assert any("account" in line.lower() for line in rep_lines)
    assert scores >= 3
    assert "ended by the rep" in outcome
