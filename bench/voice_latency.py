"""Voice-to-voice latency of voice practice over the web app's WebSocket, on this machine.

A server process runs the real web app (`coachloop serve`'s app: practice driver with the
instant scripted persona, the offline judge, voice practice with Whisper, Piper and Silero)
under uvicorn on 127.0.0.1. This process signs in as a rep, opens practice calls over the
WebSocket and talks like a browser: 20 ms microphone frames in real time, silence between
turns, each rep turn a sentence spoken by Piper. Per turn it measures, from the moment the
last sample of the rep's speech is sent to the first byte of the persona's audio that comes
back (voice to voice), and reads the server's stage times from the transcript events:

- end-of-turn wait: from the end of speech (as the VAD places it) to the turn being ended;
  Silero's silence window plus the endpointing delay;
- transcription: from the end of speech to Whisper's transcript (runs during that wait);
- LLM first token: the persona's first words from the practice driver;
- first synthesized audio: Piper's first audio after the first words.

Median and p90 over all turns, per Whisper model.

    uv run python bench/voice_latency.py --models tiny.en base --turns 30
    uv run python bench/voice_latency.py --models base --vad-silence 0.3 --endpointing 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import websockets  # noqa: E402

from config.settings import VoiceSettings  # noqa: E402
from voice.engines import load_synthesizer  # noqa: E402
from voice.stt import resample  # noqa: E402
from voice.tts import VoiceStyle  # noqa: E402

SCENARIO = "support-double-charge"
REP = "bench-rep"
PASSWORD = "bench-voice-password"
RATE = 16_000
FRAME_S = 0.02
TURNS_PER_CALL = 5
SPEECH_LEVEL = 0.02
"""Samples quieter than this (of full scale) after the last word count as the clip's tail."""
REP_TURNS = [
    "Thanks for calling, can I take your name please?",
    "I understand, that sounds frustrating.",
    "Could you tell me a little more about what happened?",
    "Let me have a look at that for you now.",
    "Which card did you pay with, and when did you notice the second payment?",
    "Okay, I am just checking the account.",
    "Right, give me a moment.",
    "And is the account in your name?",
]


# -- the server process -----------------------------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Build the web app the way `coachloop serve` does and run it on 127.0.0.1."""
    import logging
    from contextlib import asynccontextmanager
    from datetime import UTC, datetime

    import uvicorn
    from sqlmodel import Session

    from config.company import load_company
    from config.rubric import RubricLibrary
    from config.settings import Settings
    from evaluators.embeddings import SentenceEncoder
    from evaluators.judges import make_judge
    from personas import PersonaLibrary
    from scenarios import (
        PracticeDriver,
        PracticeRecorder,
        ScenarioLibrary,
        ScriptedPersona,
        TurnObserver,
        open_checkpointer,
    )
    from store.db import make_engine, migrate
    from store.models import Person
    from voice.practice import VoicePractice
    from web import PracticeService, create_app
    from web.users import set_password

    logging.basicConfig(level=logging.WARNING)
    data_dir = Path(args.data_dir)
    settings = Settings(
        data_dir=data_dir,
        voice=VoiceSettings(
            whisper_model=args.model,
            endpointing_delay_s=args.endpointing,
            vad_silence_s=args.vad_silence,
            turn_detection=args.turn_detection,
        ),
    )
    engine = make_engine(settings.resolved_database_url)
    migrate(engine)
    with Session(engine) as session:
        session.add(Person(external_id=REP, name="Bench Rep", role="support"))
        session.commit()
    set_password(engine, REP, PASSWORD, now=datetime.now(UTC))
    company = load_company()
    library = ScenarioLibrary.from_dir(company, PersonaLibrary.from_dir(company))
    rubrics = RubricLibrary.from_dir()
    judge = make_judge("offline", settings, data_dir / "models")

    @asynccontextmanager
    async def open_driver() -> Any:
        observer = TurnObserver(await asyncio.to_thread(SentenceEncoder))
        async with open_checkpointer(data_dir / "practice.sqlite") as saver:
            yield PracticeDriver(
                library=library,
                rubrics=rubrics,
                engine=ScriptedPersona(),
                observer=observer,
                recorder=PracticeRecorder(judge, rubrics, engine),
                checkpointer=saver,
            )

    app = create_app(
        engine=engine,
        settings=settings,
        rubrics=rubrics,
        practice=PracticeService(library, open_driver),
        voice=VoicePractice(settings.voice, data_dir),
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


# -- the client ---------------------------------------------------------------------------------


@dataclass
class Turn:
    voice_to_voice: float
    end_of_turn: float | None
    transcription: float | None
    llm_first_token: float | None
    first_audio: float | None
    heard: str


@dataclass
class Call:
    """One practice call: what arrived, and when."""

    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    audio_at: list[float] = field(default_factory=list)
    closed: bool = False

    def finals(self, speaker: str) -> list[dict[str, Any]]:
        return [
            e
            for _, e in self.events
            if e["type"] == "transcript" and e["speaker"] == speaker and e["final"]
        ]

    def agent_state(self) -> str | None:
        states = [e["agent"] for _, e in self.events if e["type"] == "state" and "agent" in e]
        return states[-1] if states else None


async def _listen(ws: Any, call: Call) -> None:
    try:
        async for message in ws:
            now = time.perf_counter()
            if isinstance(message, bytes):
                call.audio_at.append(now)
            else:
                call.events.append((now, json.loads(message)))
    except websockets.ConnectionClosed:
        pass
    call.closed = True


class Microphone:
    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._queued = bytearray()
        self._frame = 2 * int(RATE * FRAME_S)
        self.speech_sent_at: float | None = None

    def say(self, pcm: bytes) -> None:
        self.speech_sent_at = None
        self._queued.extend(pcm)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            if self._queued:
                frame = bytes(self._queued[: self._frame]).ljust(self._frame, b"\0")
                del self._queued[: self._frame]
                await self._ws.send(frame)
                if not self._queued:
                    self.speech_sent_at = time.perf_counter()
            else:
                await self._ws.send(bytes(self._frame))
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))


async def _until(condition: Any, guard_s: float = 120) -> None:
    async with asyncio.timeout(guard_s):
        while not condition():  # noqa: ASYNC110 (polls what the listener collected)
            await asyncio.sleep(0.005)


async def run_call(base_url: str, cookie: str, clips: list[bytes], turns: int) -> list[Turn]:
    url = "ws" + base_url.removeprefix("http") + f"/practice/voice/{SCENARIO}/socket"
    call = Call()
    measured: list[Turn] = []
    async with websockets.connect(
        url,
        additional_headers={"Cookie": cookie, "Origin": base_url},
        max_size=None,
        ping_interval=None,  # a loaded machine can miss a keepalive; the call is what counts
    ) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": RATE}))
        listener = asyncio.create_task(_listen(ws, call))
        mic = Microphone(ws)
        sender = asyncio.create_task(mic.run())
        await _until(lambda: bool(call.finals("persona")) or call.closed)
        for n in range(turns):
            await _until(lambda: call.agent_state() == "listening" or call.closed)
            if call.closed:
                break
            await asyncio.sleep(0.6)
            replies = len(call.finals("persona"))
            audio_before = len(call.audio_at)
            mic.say(clips[n % len(clips)])
            await _until(lambda: mic.speech_sent_at is not None)
            ended = mic.speech_sent_at
            assert ended is not None
            await _until(lambda r=replies: len(call.finals("persona")) > r or call.closed)
            await _until(
                lambda a=audio_before: len(call.audio_at) > a or call.closed,
                guard_s=10,
            )
            if call.closed or len(call.audio_at) <= audio_before:
                break
            first_audio = call.audio_at[audio_before]
            rep = call.finals("rep")[-1]
            reply = call.finals("persona")[-1]
            measured.append(
                Turn(
                    voice_to_voice=first_audio - ended,
                    end_of_turn=rep["metrics"].get("end_of_turn_delay"),
                    transcription=rep["metrics"].get("transcription_delay"),
                    llm_first_token=reply["metrics"].get("llm_node_ttft"),
                    first_audio=reply["metrics"].get("tts_node_ttfb"),
                    heard=rep["text"],
                )
            )
        if not call.closed:
            await ws.send(json.dumps({"type": "end"}))
            await _until(lambda: call.closed, guard_s=60)
        sender.cancel()
        await asyncio.gather(listener, sender, return_exceptions=True)
    return measured


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sign_in(base_url: str) -> str:
    with httpx.Client(base_url=base_url) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, "no sign-in form"
        response = client.post(
            "/login",
            data={"username": REP, "password": PASSWORD, "csrf_token": token.group(1), "next": "/"},
        )
        assert response.status_code == 303, response.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def _clips() -> list[bytes]:
    synth = load_synthesizer(VoiceSettings())
    clips = []
    for text in REP_TURNS:
        audio = synth.synthesize_blocking(text, style=VoiceStyle(variation=0.0))
        samples = np.frombuffer(audio.pcm16, dtype="<i2").astype(np.float32) / 32768
        at_16k = resample(samples, audio.sample_rate, RATE)
        # Piper ends with a little silence; cut it, so the last sample sent ends the speech
        voiced = np.flatnonzero(np.abs(at_16k) > SPEECH_LEVEL)
        at_16k = at_16k[: voiced[-1] + 1] if len(voiced) else at_16k
        clips.append((np.clip(at_16k, -1, 1) * 32767).astype("<i2").tobytes())
    return clips


def _stat(values: list[float | None]) -> str:
    found = sorted(v for v in values if v is not None)
    if not found:
        return "n/a"
    p90 = found[min(len(found) - 1, int(round(0.9 * (len(found) - 1))))]
    return f"{statistics.median(found):.3f} / {p90:.3f}"


async def run_calls(base_url: str, cookie: str, clips: list[bytes], total: int) -> list[Turn]:
    turns: list[Turn] = []
    while len(turns) < total:
        turns.extend(
            await run_call(base_url, cookie, clips, min(TURNS_PER_CALL, total - len(turns)))
        )
    return turns


def measure(args: argparse.Namespace, model: str, clips: list[bytes]) -> list[Turn]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as data_dir:
        command = [
            sys.executable,
            __file__,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--model",
            model,
            "--endpointing",
            str(args.endpointing),
            "--vad-silence",
            str(args.vad_silence),
            "--turn-detection",
            args.turn_detection,
        ]
        env = {**os.environ, "COACHLOOP_VOICE__MODEL_CACHE_DIR": str(args.model_cache)}
        server = subprocess.Popen(command, env=env)
        base_url = f"http://127.0.0.1:{port}"
        try:
            started = time.perf_counter()
            while True:
                try:
                    if httpx.get(base_url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.perf_counter() - started > 600:
                    raise SystemExit(f"the server for {model} did not start")
                time.sleep(0.2)
            print(f"  {model}: server up in {time.perf_counter() - started:.1f} s", flush=True)
            return asyncio.run(run_calls(base_url, _sign_in(base_url), clips, args.turns))
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command")
    server = sub.add_parser("serve", help="(internal) the server process", allow_abbrev=False)
    server.add_argument("--port", type=int, required=True)
    server.add_argument("--data-dir", required=True)
    server.add_argument("--model", required=True)
    for target in (parser, server):
        target.add_argument(
            "--endpointing", type=float, default=VoiceSettings().endpointing_delay_s
        )
        target.add_argument("--vad-silence", type=float, default=VoiceSettings().vad_silence_s)
        target.add_argument("--turn-detection", choices=["vad", "turn-detector"], default="vad")
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "coachloop-bench-models",
        help="Where the joined Whisper base model is kept between runs.",
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args)
        return

    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, cpus: {os.cpu_count()}")
    print(
        f"settings: vad silence {args.vad_silence} s, endpointing {args.endpointing} s, "
        f"turn detection {args.turn_detection}"
    )
    clips = _clips()
    print(
        "| model | turns | voice to voice | end-of-turn wait | transcription | "
        "LLM first token | first synthesized audio |"
    )
    print("|---|---|---|---|---|---|---|")
    for model in args.models:
        turns = measure(args, model, clips)
        print(
            f"| {model} | {len(turns)} | {_stat([t.voice_to_voice for t in turns])} | "
            f"{_stat([t.end_of_turn for t in turns])} | {_stat([t.transcription for t in turns])} | "
            f"{_stat([t.llm_first_token for t in turns])} | {_stat([t.first_audio for t in turns])} |",
            flush=True,
        )
        misheard = sum(1 for t in turns if not t.heard.strip())
        if misheard:
            print(f"  ({misheard} turns heard nothing)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("figures are median / p90 in seconds")


if __name__ == "__main__":
    main()
