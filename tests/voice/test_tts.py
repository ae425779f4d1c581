"""Text-to-speech: real Piper audio, styles, sentence streaming, and the round trip through STT."""

from __future__ import annotations

import asyncio

import pytest

from tests.voice.audio import pcm, words
from voice import PiperSynthesizer, VoiceStyle, WhisperTranscriber, split_sentences

GREETING = "Thanks for calling, this is Sam. How can I help you today?"


async def test_synthesized_speech_has_a_plausible_length_and_round_trips(
    synth: PiperSynthesizer, tiny: WhisperTranscriber
) -> None:
    audio = await synth.synthesize(GREETING)

    assert audio.sample_rate == 22_050
    assert len(audio.pcm16) % 2 == 0
    # 12 words at an ordinary speaking rate of 2 to 4 words a second
    assert 12 / 4 < audio.duration_s < 12 / 2
    assert int(abs(pcm(audio.pcm16)).max()) > 10_000

    heard = await tiny.transcribe(audio.pcm16, audio.sample_rate)
    assert words(heard.text) == words(GREETING)


async def test_speed_changes_the_length_and_zero_variation_is_repeatable(
    synth: PiperSynthesizer,
) -> None:
    text = "Your refund will arrive within five working days."

    slow = await synth.synthesize(text, style=VoiceStyle(speed=0.8, variation=0.0))
    normal = await synth.synthesize(text, style=VoiceStyle(speed=1.0, variation=0.0))
    again = await synth.synthesize(text, style=VoiceStyle(speed=1.0, variation=0.0))
    fast = await synth.synthesize(text, style=VoiceStyle(speed=1.25, variation=0.0))
    lively = await synth.synthesize(text, style=VoiceStyle(speed=1.0, variation=1.5))

    assert slow.duration_s > normal.duration_s > fast.duration_s
    assert slow.duration_s / fast.duration_s == pytest.approx(1.25 / 0.8, rel=0.15)
    assert normal.pcm16 == again.pcm16
    assert lively.pcm16 != normal.pcm16


async def test_stream_yields_the_first_sentence_before_the_last_is_synthesized(
    synth: PiperSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[tuple[str, str]] = []
    speak = synth._speak

    def recording_speak(text: str, config: object) -> object:
        events.append(("start", text))
        audio = speak(text, config)
        events.append(("done", text))
        return audio

    monkeypatch.setattr(synth, "_speak", recording_speak)
    text = "I understand. Let me look at your account. One moment while I check the last bill."
    sentences = split_sentences(text)

    chunks = []
    async for chunk in synth.stream(text):
        events.append(("yielded", chunk.text))
        chunks.append(chunk)

    assert [c.text for c in chunks] == sentences
    assert events.index(("yielded", sentences[0])) < events.index(("start", sentences[2]))
    assert all(c.sample_rate == 22_050 and c.duration_s > 0.3 for c in chunks)


async def test_closing_a_stream_stops_the_remaining_sentences(
    synth: PiperSynthesizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[str] = []
    speak = synth._speak

    def recording_speak(text: str, config: object) -> object:
        started.append(text)
        return speak(text, config)

    monkeypatch.setattr(synth, "_speak", recording_speak)
    text = "First sentence here. Second one follows. Third one. Fourth one. Fifth and last."

    stream = synth.stream(text)
    first = await anext(stream)
    await stream.aclose()  # the rep barged in
    await asyncio.sleep(0.5)

    assert first.text == "First sentence here."
    assert len(started) <= 2


async def test_synthesis_leaves_the_event_loop_free(synth: PiperSynthesizer) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    audio = await synth.synthesize(
        "Let me look at the last three bills and see what happened there."
    )
    during = ticks - before
    task.cancel()

    assert audio.duration_s > 2
    # a blocked loop would let the ticker run at most once during the call
    assert during >= 5


async def test_nothing_to_say_gives_no_audio(synth: PiperSynthesizer) -> None:
    assert (await synth.synthesize("")).pcm16 == b""
    assert [c async for c in synth.stream(" ... ")] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there. How are you?", ["Hello there.", "How are you?"]),
        ("Mr. Patel called! Dr. Ruiz too.", ["Mr. Patel called!", "Dr. Ruiz too."]),
        ("It's J. Smith. Yes.", ["It's J. Smith.", "Yes."]),
        ('He said "stop." Then left.', ['He said "stop."', "Then left."]),
        (
            "Is that e.g. the router? Maybe…  Let me check",
            ["Is that e.g. the router?", "Maybe…", "Let me check"],
        ),
        ("  ", []),
        ("?!", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_long_sentences_are_cut_at_clause_boundaries() -> None:
    sentence = ", ".join(f"item number {n} on the bill" for n in range(20)) + "."

    pieces = split_sentences(sentence, max_chars=80)

    assert len(pieces) > 3
    assert all(len(p) <= 80 for p in pieces)
    assert " ".join(pieces) == sentence


@pytest.mark.parametrize("style", [{"speed": 0.1}, {"speed": 5}, {"variation": -1}])
def test_styles_out_of_range_are_refused(style: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VoiceStyle(**style)
