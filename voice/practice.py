"""Voice practice for a long-running process: the engines loaded once, then one call per rep.

`coachloop serve` builds a `VoicePractice` from settings and loads it at start-up (the cost is
logged), and every WebSocket practice call opens through it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livekit.agents.vad import VAD

# LiveKit plugins register themselves on import, which must happen on the main thread; the
# models themselves load later, in `load`, possibly from a worker thread.
from livekit.plugins import silero

from config.settings import VoiceSettings
from scenarios import PracticeDriver
from voice.agent import PracticeCall, TurnDetection, open_practice_call
from voice.engines import VoiceEngines, load_synthesizer, load_transcriber
from voice.errors import VoiceError

logger = logging.getLogger(__name__)


@dataclass
class VoicePractice:
    """The speech engines, the VAD and the turn settings, shared by every practice call.

    Args:
        settings: The voice settings.
        data_dir: Where prepared models are cached (see `voice.model_cache_dir`).
        engines: Already loaded engines (tests, benchmarks); default: loaded by `load`.
    """

    settings: VoiceSettings
    data_dir: Path
    engines: VoiceEngines | None = None
    vad: VAD | None = None
    turn_detector: Any = None
    load_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def loaded(self) -> bool:
        return self.engines is not None and self.vad is not None

    def load(self) -> None:
        """Load Whisper, Piper, Silero (and the local end-of-turn model when configured).

        Blocking, a few seconds; call once at start-up, from a thread in async code.

        Raises:
            VoiceError: A model is missing or broken; the message names the setting.
        """
        if self.engines is None:
            started = time.perf_counter()
            transcriber = load_transcriber(self.settings, self.data_dir)
            self.load_seconds["whisper"] = time.perf_counter() - started
            started = time.perf_counter()
            synthesizer = load_synthesizer(self.settings)
            self.load_seconds["piper"] = time.perf_counter() - started
            self.engines = VoiceEngines(transcriber=transcriber, synthesizer=synthesizer)
        if self.vad is None:
            started = time.perf_counter()
            self.vad = silero.VAD.load(min_silence_duration=self.settings.vad_silence_s)
            self.load_seconds["silero"] = time.perf_counter() - started
        if self.settings.turn_detection == "turn-detector" and self.turn_detector is None:
            started = time.perf_counter()
            self.turn_detector = _local_turn_detector()
            self.load_seconds["turn_detector"] = time.perf_counter() - started
        logger.info(
            "voice practice models loaded",
            extra={
                "whisper": self.engines.transcriber.name,
                "piper": self.engines.synthesizer.name,
                "turn_detection": self.settings.turn_detection,
                **{f"{name}_s": round(seconds, 2) for name, seconds in self.load_seconds.items()},
            },
        )

    @property
    def turn_detection(self) -> TurnDetection:
        if self.settings.turn_detection == "turn-detector":
            return self.turn_detector if self.turn_detector is not None else "vad"
        return "vad"

    async def open_call(
        self,
        driver: PracticeDriver,
        *,
        scenario: str,
        rep_external_id: str | None = None,
        assignment_id: int | None = None,
        session_id: str | None = None,
    ) -> PracticeCall:
        """Start a practice session and its agent session (not yet started).

        `session_id` names the practice session (default: a new id); a LiveKit room passes
        its own, so a job restarted in the same room finds the session it started.

        Raises:
            ScenarioError: Unknown scenario or rep, or an assignment that is not theirs.
            VoiceError: `load` was not called.
        """
        if self.engines is None or self.vad is None:
            raise VoiceError("Voice practice models are not loaded; call `load` at start-up")
        return await open_practice_call(
            driver,
            self.engines,
            scenario=scenario,
            rep_external_id=rep_external_id,
            assignment_id=assignment_id,
            session_id=session_id,
            vad=self.vad,
            turn_detection=self.turn_detection,
            min_endpointing_delay=self.settings.endpointing_delay_s,
            min_interruption_duration=self.settings.interruption_min_s,
        )


def _local_turn_detector() -> Any:
    """LiveKit's local end-of-turn model (`v1-mini`, bundled with livekit-agents)."""
    from livekit.agents.inference import TurnDetector

    return TurnDetector(version="v1-mini")
