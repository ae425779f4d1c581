"""The voice practice agent: a scenario's persona on LiveKit Agents, spoken by the local engines.

The persona's words come from the practice driver (`scenarios.PracticeDriver`), scripted or
from an LLM, exactly as in the text chat. `PersonaLLM` puts the driver behind LiveKit's `LLM`
interface, so an `AgentSession` runs the usual pipeline around it: Silero VAD, Whisper
transcription, end of turn, the persona's reply streamed sentence by sentence into Piper, and
barge-in. `PracticeAgent` speaks the opening line, nudges a silent rep, and scores the session
when it ends, whoever ends it.

Both transports use the same pieces: the browser WebSocket (`voice.ws_transport`) sets the
session's audio and text I/O itself; a LiveKit room worker passes its room to
`AgentSession.start`.

```python
call = await open_practice_call(driver, engines, scenario="support-double-charge",
                                rep_external_id="e-1042")
call.on_result(show_feedback)          # PracticeResult, once, when the session is scored
await call.session.start(call.agent)   # with room=... or custom audio I/O
...
result = await call.end()              # or the persona ends it; scored either way
```
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Never

from livekit.agents import Agent, AgentSession, llm, utils, vad as lk_vad
from livekit.agents.llm import ChatChunk, ChoiceDelta
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    FlushSentinel,
    NotGivenOr,
)
from livekit.agents.voice import ModelSettings
from livekit.agents.voice.events import CloseEvent, UserStateChangedEvent

from scenarios import PracticeDriver, PracticeResult, Scenario, SessionStart
from voice.engines import VoiceEngines
from voice.livekit_adapters import PiperTTS, WhisperSTT
from voice.tts import VoiceStyle

if TYPE_CHECKING:
    from personas import Persona

logger = logging.getLogger(__name__)

CHANNEL = "voice"
"""The channel practice sessions started here are recorded under."""

TurnDetection = Literal["vad"] | Any
"""`"vad"` (end of turn after a pause, the default) or a LiveKit turn detector instance,
such as the local `livekit.agents.inference.TurnDetector(version="v1-mini")`."""

ResultListener = Callable[[PracticeResult], Awaitable[None] | None]
ErrorListener = Callable[[Exception], Awaitable[None] | None]


@dataclass(slots=True)
class TurnTiming:
    """When one persona reply's text arrived, in `time.perf_counter()` seconds."""

    rep_text: str
    requested_at: float
    first_text_at: float | None = None
    done_at: float | None = None


class PersonaLLM(llm.LLM[Never]):
    """The practice driver's persona behind LiveKit's `LLM` interface.

    Each `chat` call takes the rep's last message from the chat context and streams the
    persona's answer from `PracticeDriver.stream_rep_turn`; a call without a new rep message
    reports a silence, and the persona nudges. The driver's turn runs in its own task, so a
    barge-in that cancels the stream never leaves the roleplay graph half-way through a step:
    the turn is recorded whole, and only the audio stops.

    Args:
        driver: The practice driver.
        session_id: The practice session this persona speaks in.
        on_turn_done: Called after each turn with whether the session has ended.
    """

    def __init__(
        self,
        driver: PracticeDriver,
        session_id: str,
        *,
        on_turn_done: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__()
        self._driver = driver
        self._session_id = session_id
        self._on_turn_done = on_turn_done
        self._tasks: set[asyncio.Task[None]] = set()
        self.timings: list[TurnTiming] = []
        """Per reply: when it was asked for and when its first and last text came."""

    @property
    def model(self) -> str:
        engine = self._driver.context.engine
        return str(getattr(engine, "name", type(engine).__name__))

    @property
    def provider(self) -> str:
        return "coachloop-practice"

    @property
    def session_id(self) -> str:
        return self._session_id

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> _PersonaStream:
        # a retry would send the rep's turn to the roleplay graph a second time
        options = APIConnectOptions(
            max_retry=0, retry_interval=conn_options.retry_interval, timeout=conn_options.timeout
        )
        return _PersonaStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=options)

    def start_turn(self, text: str) -> asyncio.Queue[str | None]:
        """Run one rep turn through the driver; the persona's pieces arrive on the queue,
        then None. The turn finishes even if nobody reads the queue any more."""
        pieces: asyncio.Queue[str | None] = asyncio.Queue()
        task = asyncio.create_task(self._turn(text, pieces), name="practice.persona_turn")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return pieces

    async def _turn(self, text: str, pieces: asyncio.Queue[str | None]) -> None:
        timing = TurnTiming(rep_text=text, requested_at=time.perf_counter())
        ended = False
        try:
            async for piece in self._driver.stream_rep_turn(self._session_id, text):
                # the driver streams whole sentences, joined by a space as in the transcript
                if timing.first_text_at is None:
                    timing.first_text_at = time.perf_counter()
                    pieces.put_nowait(piece)
                else:
                    pieces.put_nowait(" " + piece)
            view = await self._driver.get_session(self._session_id)
            ended = view.status == "ended"
        except Exception:
            logger.exception("persona turn failed", extra={"session_id": self._session_id})
            raise
        finally:
            pieces.put_nowait(None)
            timing.done_at = time.perf_counter()
            self.timings.append(timing)
        if self._on_turn_done is not None:
            self._on_turn_done(ended)

    async def drain(self) -> None:
        """Wait for the turns still running in the driver."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()
        await super().aclose()


def rep_text(chat_ctx: llm.ChatContext) -> str:
    """The rep's newest words: the last message if it is theirs, else "" (a silence)."""
    for item in reversed(chat_ctx.items):
        if item.type != "message":
            continue
        if item.role == "user":
            return (item.text_content or "").strip()
        if item.role == "assistant":
            return ""
    return ""


class _PersonaStream(llm.LLMStream):
    def __init__(
        self,
        persona: PersonaLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(persona, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._persona = persona

    async def _run(self) -> None:
        request_id = utils.shortuuid("persona_")
        pieces = self._persona.start_turn(rep_text(self._chat_ctx))
        while (piece := await pieces.get()) is not None:
            self._event_ch.send_nowait(
                ChatChunk(id=request_id, delta=ChoiceDelta(role="assistant", content=piece))
            )


def persona_style(persona: Persona, default: VoiceStyle) -> VoiceStyle:
    """The persona's voice settings relative to the configured voice style.

    A persona's `speed` and `variation` scale the site-wide ones (1.0 keeps them), within the
    ranges Piper accepts.
    """
    return VoiceStyle(
        speed=min(4.0, max(0.25, default.speed * persona.voice.speed)),
        variation=min(2.0, max(0.0, default.variation * persona.voice.variation)),
    )


class PracticeAgent(Agent):
    """Plays a scenario's persona through the practice driver, by voice.

    It speaks the persona's opening line on entering, answers every rep turn through
    `PersonaLLM`, nudges after the scenario's silence timeout (`user_away_timeout` of the
    session, see `build_agent_session`), and when the session ends (the persona ends it, the
    rep says "let's wrap up", the time box or turn limit is reached, `end` is called or the
    transport closes) scores it once through `PracticeDriver.end_session` and hands the
    result to the listeners added with `on_result`.

    Args:
        driver: The practice driver.
        start: The started practice session (from `PracticeDriver.start_session`).
        greet: Speak the opening line when the agent starts.
    """

    def __init__(self, driver: PracticeDriver, start: SessionStart, *, greet: bool = True) -> None:
        self.persona_llm = PersonaLLM(driver, start.session_id, on_turn_done=self._turn_done)
        super().__init__(
            instructions=f"Play {start.persona} in the practice scenario `{start.scenario}`.",
            llm=self.persona_llm,
        )
        self._driver = driver
        self.start = start
        self._greet = greet
        self._ended = False
        self._finishing: asyncio.Task[PracticeResult] | None = None
        self._result_listeners: list[ResultListener] = []
        self._error_listeners: list[ErrorListener] = []
        self.result: asyncio.Future[PracticeResult] = asyncio.get_running_loop().create_future()
        """Resolves with the scored session (or its scoring error) once it has ended."""

    @property
    def session_id(self) -> str:
        return self.start.session_id

    @property
    def ended(self) -> bool:
        """The roleplay has ended (scored or about to be)."""
        return self._ended

    def on_result(self, listener: ResultListener) -> None:
        """Call `listener` with the scored result when the session ends (at once if it has)."""
        self._result_listeners.append(listener)
        if self.result.done() and self.result.exception() is None:
            _call_soon(listener, self.result.result())

    def on_error(self, listener: ErrorListener) -> None:
        """Call `listener` if scoring the session fails."""
        self._error_listeners.append(listener)

    async def on_enter(self) -> None:
        self.session.on("user_state_changed", self._user_state_changed)
        if self._greet and self.start.opening:
            self.session.say(self.start.opening)

    async def on_exit(self) -> None:
        await self.finish()

    async def llm_node(
        self,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        model_settings: ModelSettings,
    ) -> AsyncIterable[llm.ChatChunk | str | FlushSentinel]:
        if self._ended:
            return
        text = rep_text(chat_ctx)
        logger.debug(
            "rep turn", extra={"session_id": self.session_id, "chars": len(text), "pii.text": text}
        )
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk

    def _turn_done(self, ended: bool) -> None:
        if ended and not self._ended:
            self._ended = True
            logger.info("practice session ended by the roleplay", extra=self._log())
            # the persona's last words play out, then the session closes and is scored
            self.session.shutdown(drain=True)

    def _user_state_changed(self, event: UserStateChangedEvent) -> None:
        if event.new_state != "away" or self._ended:
            return
        if self.session.agent_state not in ("listening", "idle"):
            return
        logger.debug("rep silent", extra=self._log())
        self.session.generate_reply()
        self.session.reset_away_timer()

    async def finish(self) -> PracticeResult:
        """Score the session (once; later calls return the same result)."""
        if self._finishing is None:
            self._finishing = asyncio.create_task(self._finish(), name="practice.finish")
        return await asyncio.shield(self._finishing)

    async def _finish(self) -> PracticeResult:
        self._ended = True
        await self.persona_llm.drain()
        try:
            result = await self._driver.end_session(self.session_id)
        except Exception as exc:
            logger.exception("practice session could not be scored", extra=self._log())
            if not self.result.done():
                self.result.set_exception(exc)
                self.result.exception()  # retrieved here: listeners and callers get it too
            for on_error in self._error_listeners:
                await _call(on_error, exc)
            raise
        logger.info(
            "practice session scored",
            extra={**self._log(), "outcome": result.outcome, "scored": result.scored},
        )
        if not self.result.done():
            self.result.set_result(result)
        for listener in self._result_listeners:
            await _call(listener, result)
        return result

    def _log(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "scenario": self.start.scenario}


async def _call(listener: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    try:
        outcome = listener(value)
        if inspect.isawaitable(outcome):
            await outcome
    except Exception:
        logger.exception("practice listener failed")


def _call_soon(listener: Callable[[Any], Awaitable[None] | None], value: Any) -> None:
    task = asyncio.get_running_loop().create_task(_call(listener, value))
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


def build_agent_session(
    engines: VoiceEngines,
    *,
    vad: lk_vad.VAD | None = None,
    style: VoiceStyle | None = None,
    turn_detection: TurnDetection = "vad",
    min_endpointing_delay: float = 0.4,
    max_endpointing_delay: float = 3.0,
    min_interruption_duration: float = 0.4,
    user_away_timeout: float | None = 15.0,
    echo_warmup_s: float | None = None,
) -> AgentSession[None]:
    """An `AgentSession` on the local engines, ready for a `PracticeAgent`.

    Whisper is wrapped in LiveKit's VAD stream adapter and Piper in its sentence stream
    adapter (both done by the session, since neither engine streams natively). Barge-in is
    on: when the rep talks over the persona for `min_interruption_duration` seconds, the
    persona stops. No preemptive generation: each rep turn reaches the roleplay graph once,
    when it is final.

    Args:
        engines: The loaded engines, shared across sessions.
        vad: Voice activity detection; default Silero from `livekit-plugins-silero`. Load
            it once per process (`silero.VAD.load()`) and pass it in.
        style: The persona's voice style (see `persona_style`); default the voice's own.
        turn_detection: `"vad"` ends the rep's turn after `min_endpointing_delay` seconds of
            silence; or a LiveKit turn detector.
        min_endpointing_delay: Silence after speech before the turn ends.
        max_endpointing_delay: Longest wait when a turn detector thinks the rep goes on.
        min_interruption_duration: Speech over the persona that counts as a barge-in.
        user_away_timeout: Silence (seconds, rep and persona both quiet) before the persona
            nudges; the scenario's `silence_timeout_s` is a good value. None: never.
        echo_warmup_s: Ignore barge-ins this long after the persona starts speaking, for
            audio paths without echo cancellation. None: the browser's (and LiveKit's
            client SDKs') echo cancellation is trusted, and the rep can interrupt at once.
    """
    if vad is None:
        from livekit.plugins import silero

        vad = silero.VAD.load()
    return AgentSession(
        stt=WhisperSTT(engines.transcriber),
        tts=PiperTTS(engines.synthesizer, style=style),
        vad=vad,
        turn_handling={
            "turn_detection": turn_detection,
            "endpointing": {
                "mode": "fixed",
                "min_delay": min_endpointing_delay,
                "max_delay": max_endpointing_delay,
            },
            "interruption": {
                "enabled": True,
                "mode": "vad",
                "min_duration": min_interruption_duration,
                "resume_false_interruption": False,
                "false_interruption_timeout": None,
            },
            "preemptive_generation": {"enabled": False},
        },
        user_away_timeout=user_away_timeout,
        aec_warmup_duration=echo_warmup_s,
        tts_text_transforms=None,
    )


@dataclass
class PracticeCall:
    """Everything a transport needs for one voice practice session."""

    agent: PracticeAgent
    session: AgentSession[None]
    start: SessionStart
    scenario: Scenario
    persona: Persona
    style: VoiceStyle
    _closed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.session.on("close", self._on_close)

    @property
    def session_id(self) -> str:
        return self.start.session_id

    def on_result(self, listener: ResultListener) -> None:
        self.agent.on_result(listener)

    def _on_close(self, _: CloseEvent) -> None:
        self._closed.set()
        _call_soon(lambda _: self._finish_quietly(), None)

    async def _finish_quietly(self) -> None:
        try:
            await self.agent.finish()
        except Exception:
            pass  # already logged and handed to the error listeners

    async def end(self) -> PracticeResult:
        """End the session now (the rep pressed End or hung up): stop speaking, score it,
        close the agent session. Safe to call more than once."""
        self.agent._ended = True
        if self.session.current_speech is not None:
            try:
                await self.session.interrupt(force=True)
            except RuntimeError:
                pass  # the session is already closing; nothing is playing any more
        result = await self.agent.finish()
        await self.aclose()
        return result

    async def aclose(self) -> None:
        """Close the agent session (which scores the practice session if it is not yet)."""
        await self.session.aclose()
        self._closed.set()

    async def wait_closed(self) -> None:
        await self._closed.wait()


async def open_practice_call(
    driver: PracticeDriver,
    engines: VoiceEngines,
    *,
    scenario: str,
    assignment_id: int | None = None,
    rep_external_id: str | None = None,
    session_id: str | None = None,
    vad: lk_vad.VAD | None = None,
    turn_detection: TurnDetection = "vad",
    default_style: VoiceStyle | None = None,
    **session_options: Any,
) -> PracticeCall:
    """Start a voice practice session for a rep on a scenario or an assignment.

    Returns the agent and its (not yet started) `AgentSession`; the transport attaches its
    audio and starts it with `call.session.start(call.agent, ...)`.

    Args:
        driver: The practice driver.
        engines: The loaded speech engines.
        scenario: The scenario slug (an assignment's `scenario_slug`).
        assignment_id: The rep's practice assignment for that scenario, closed when the
            session is scored.
        rep_external_id: The rep practising; None practises anonymously (nothing is stored
            against a rep).
        session_id: The practice session id; default a new one.
        vad: A loaded VAD (shared across sessions); default Silero, loaded here.
        turn_detection: See `build_agent_session`.
        default_style: The site-wide voice style; default the synthesizer's.
        **session_options: More keyword arguments for `build_agent_session`.

    Raises:
        ScenarioError: Unknown scenario, rep or assignment, or the assignment is not theirs.
    """
    started = await driver.start_session(
        scenario,
        rep_external_id=rep_external_id,
        assignment_id=assignment_id,
        channel=CHANNEL,
        session_id=session_id,
    )
    chosen = driver.library.get(started.scenario)
    persona = driver.library.persona_for(chosen)
    if persona.voice.piper_voice is not None:
        # TODO(owner): load a persona's own Piper voice; one voice per process for now
        logger.info(
            "persona voice not loaded; using the configured voice",
            extra={"persona": persona.slug, "voice": persona.voice.piper_voice},
        )
    style = persona_style(persona, default_style or engines.synthesizer.style)
    session_options.setdefault("user_away_timeout", started.silence_timeout_s)
    session = build_agent_session(
        engines, vad=vad, style=style, turn_detection=turn_detection, **session_options
    )
    agent = PracticeAgent(driver, started)
    logger.info(
        "voice practice started",
        extra={
            "session_id": started.session_id,
            "scenario": started.scenario,
            "assignment_id": assignment_id,
            "speed": style.speed,
        },
    )
    return PracticeCall(
        agent=agent,
        session=session,
        start=started,
        scenario=chosen,
        persona=persona,
        style=style,
    )
