"""The embedded voice transport: a browser talks to the practice agent over one WebSocket.

No LiveKit server is involved: the web app accepts the socket and hands it to
`serve_practice_call`, which plugs the socket into the `AgentSession` as its audio input,
audio output and transcript output.

Wire protocol (one WebSocket per practice session):

From the browser:

- text `{"type": "hello", "sample_rate": 16000}`: optional, first; the rate of the
  microphone audio that follows (8,000 to 48,000 Hz; default 16,000);
- binary frames: the microphone, mono signed 16-bit little-endian PCM at that rate, sent
  continuously (zeros while a push-to-talk button is up), in pieces of any length;
- text `{"type": "end"}`: the rep ends the session; it is scored and the socket closed.

From the server:

- text `{"type": "ready", "session_id", "title", "persona", "briefing", "sample_rate",
  "input_sample_rate", "turn_limit", "time_box_minutes"}`: once, first; `sample_rate` is the
  rate of the persona's audio;
- binary frames: the persona's voice, mono signed 16-bit little-endian PCM at `sample_rate`,
  sent as fast as it is synthesized; play them back to back;
- text `{"type": "clear"}`: the rep barged in; drop the persona audio not yet played;
- text `{"type": "transcript", "speaker": "rep" | "persona", "text", "final"}`: the rep's
  transcribed turn (final), the persona's words as they are spoken (`final: false`, pieces
  to append) and its whole reply (`final: true`); final ones carry `metrics` (seconds:
  `end_of_turn_delay` and `transcription_delay` for the rep, `llm_node_ttft`,
  `tts_node_ttfb` and `e2e_latency` for the persona, when known);
- text `{"type": "state", "agent": "listening" | "thinking" | "speaking"}` and
  `{"type": "state", "user": "speaking" | "listening" | "away"}`;
- text `{"type": "feedback", "result": {...}}`: the scored session (`PracticeResult` as
  JSON), once, when it ends;
- text `{"type": "error", "message"}`, then the socket closes; and
  `{"type": "ended"}` just before a normal close.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from livekit import rtc
from livekit.agents.llm import ChatMessage
from livekit.agents.voice import io
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    ConversationItemAddedEvent,
    ErrorEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
)

from scenarios import PracticeResult
from voice.agent import PracticeCall

logger = logging.getLogger(__name__)

DEFAULT_INPUT_RATE = 16_000
MIN_INPUT_RATE = 8_000
MAX_INPUT_RATE = 48_000
FRAME_MS = 20
MAX_MESSAGE_BYTES = 64 * 1024
"""Larger microphone messages are refused (a 20 ms frame at 48 kHz is under 2 KB)."""


class Connection(Protocol):
    """The few WebSocket operations the transport needs (the web edge adapts its socket)."""

    async def receive(self) -> str | bytes | None:
        """The next message, or None when the browser has gone."""
        ...

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000) -> None: ...


class ProtocolError(ValueError):
    """The browser sent something the protocol does not allow."""


class PushAudioInput(io.AudioInput):
    """Microphone audio pushed in by a transport, cut into 20 ms frames for the session.

    Args:
        sample_rate: The rate of the pushed PCM.
    """

    def __init__(self, sample_rate: int = DEFAULT_INPUT_RATE) -> None:
        super().__init__(label="websocket-microphone")
        self.sample_rate = sample_rate
        self._frame_bytes = 2 * sample_rate * FRAME_MS // 1000
        self._pending = bytearray()
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._closed = False
        self.received_s = 0.0
        """Seconds of audio pushed so far."""

    def set_sample_rate(self, sample_rate: int) -> None:
        if self._pending or self.received_s:
            raise ProtocolError("The sample rate can only be set before any audio is sent")
        self.sample_rate = sample_rate
        self._frame_bytes = 2 * sample_rate * FRAME_MS // 1000

    def push(self, pcm16: bytes) -> None:
        """Add mono 16-bit little-endian PCM at `sample_rate`."""
        if self._closed:
            return
        self._pending.extend(pcm16)
        samples = self._frame_bytes // 2
        while len(self._pending) >= self._frame_bytes:
            chunk = bytes(self._pending[: self._frame_bytes])
            del self._pending[: self._frame_bytes]
            self._frames.put_nowait(
                rtc.AudioFrame(
                    data=chunk,
                    sample_rate=self.sample_rate,
                    num_channels=1,
                    samples_per_channel=samples,
                )
            )
            self.received_s += FRAME_MS / 1000

    def close(self) -> None:
        """No more audio: the session's audio stream ends."""
        if not self._closed:
            self._closed = True
            self._frames.put_nowait(None)

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await self._frames.get()
        if frame is None:
            self._frames.put_nowait(None)
            raise StopAsyncIteration
        return frame


class StreamedAudioOutput(io.AudioOutput):
    """The persona's audio, handed to `send` as soon as it is synthesized.

    The far end plays the frames back to back in real time, so this sink keeps the same
    playout clock: each frame starts when the previous one ends, or when it arrives if the
    far end had run dry. From it come the playback events the session needs: finished (with
    the position) after the last frame of a reply has played, and on `clear_buffer` (a
    barge-in) the position reached, while the far end is told to drop the rest.

    Args:
        send: Sends one frame to the far end.
        clear: Tells the far end to drop what it has not played yet.
        clock: Seconds, monotonic; tests may pass their own.
    """

    def __init__(
        self,
        send: Callable[[rtc.AudioFrame], Awaitable[None]],
        clear: Callable[[], Coroutine[Any, Any, None]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            label="websocket-speaker", capabilities=io.AudioOutputCapabilities(pause=False)
        )
        self._send = send
        self._clear = clear
        self._clock = clock
        self._capturing = False
        self._segment_s = 0.0
        self._played_until = 0.0
        self._finish: asyncio.TimerHandle | None = None
        self._open_segment = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        now = self._clock()
        if not self._capturing:
            self._capturing = True
            if not self._open_segment:
                self._open_segment = True
                self._segment_s = 0.0
                self.on_playback_started(created_at=time.time())
        self._played_until = max(self._played_until, now) + frame.duration
        self._segment_s += frame.duration
        await self._send(frame)

    def flush(self) -> None:
        super().flush()
        if not self._capturing:
            return
        self._capturing = False
        if self._finish is not None:
            self._finish.cancel()
        remaining = max(0.0, self._played_until - self._clock())
        self._finish = asyncio.get_running_loop().call_later(remaining, self._finished)

    def _finished(self) -> None:
        self._finish = None
        if self._open_segment and not self._capturing:
            self._open_segment = False
            self.on_playback_finished(playback_position=self._segment_s, interrupted=False)

    def clear_buffer(self) -> None:
        if self._finish is not None:
            self._finish.cancel()
            self._finish = None
        if not self._open_segment:
            return
        unplayed = max(0.0, self._played_until - self._clock())
        position = max(0.0, self._segment_s - unplayed)
        self._played_until = self._clock()
        self._capturing = False
        self._open_segment = False
        task = asyncio.get_running_loop().create_task(self._clear())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.on_playback_finished(playback_position=position, interrupted=True)


class EventTextOutput(io.TextOutput):
    """The persona's words as they are spoken, as `transcript` events (`final: false`)."""

    def __init__(self, send_event: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(label="websocket-transcript", next_in_chain=None)
        self._send_event = send_event

    async def capture_text(self, text: str) -> None:
        if text:
            self._send_event(
                {"type": "transcript", "speaker": "persona", "text": text, "final": False}
            )

    def flush(self) -> None:
        pass


_METRIC_KEYS = (
    "end_of_turn_delay",
    "transcription_delay",
    "llm_node_ttft",
    "tts_node_ttfb",
    "e2e_latency",
)


def _message_metrics(message: ChatMessage) -> dict[str, float]:
    metrics: dict[str, Any] = dict(message.metrics or {})
    return {key: round(float(metrics[key]), 4) for key in _METRIC_KEYS if key in metrics}


def parse_hello(text: str) -> int:
    """The microphone rate a `hello` message announces."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        raise ProtocolError("Text messages must be JSON objects") from None
    rate = message.get("sample_rate", DEFAULT_INPUT_RATE) if isinstance(message, dict) else None
    if not isinstance(rate, int) or not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise ProtocolError(
            f"sample_rate must be a whole number of Hz from {MIN_INPUT_RATE} to {MAX_INPUT_RATE}"
        )
    return rate


class PracticeSocket:
    """One practice call served over one WebSocket (see the module docstring).

    Args:
        connection: The accepted socket.
        call: The practice call, not yet started.
        feedback_url: Where the browser can read the feedback later, sent with it.
    """

    def __init__(
        self, connection: Connection, call: PracticeCall, *, feedback_url: str | None = None
    ) -> None:
        self._connection = connection
        self._call = call
        self._feedback_url = feedback_url
        self._outgoing: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self.audio_in = PushAudioInput()
        self.audio_out = StreamedAudioOutput(self._send_frame, self._send_clear)
        self.text_out = EventTextOutput(self.send_event)
        self._result_sent = asyncio.Event()

    def send_event(self, event: dict[str, Any]) -> None:
        self._outgoing.put_nowait(json.dumps(event, separators=(",", ":")))

    async def _send_frame(self, frame: rtc.AudioFrame) -> None:
        self._outgoing.put_nowait(bytes(frame.data))

    async def _send_clear(self) -> None:
        self.send_event({"type": "clear"})

    async def _writer(self) -> None:
        while (message := await self._outgoing.get()) is not None:
            try:
                if isinstance(message, bytes):
                    await self._connection.send_bytes(message)
                else:
                    await self._connection.send_text(message)
            except Exception:
                logger.debug("voice socket closed while sending", exc_info=True)
                return

    def _wire(self) -> None:
        session = self._call.session
        session.input.audio = self.audio_in
        session.output.audio = self.audio_out
        session.output.transcription = self.text_out

        @session.on("user_input_transcribed")
        def _transcribed(event: UserInputTranscribedEvent) -> None:
            if event.is_final and event.transcript.strip():
                logger.debug(
                    "rep transcribed",
                    extra={"session_id": self._call.session_id, "pii.text": event.transcript},
                )

        @session.on("conversation_item_added")
        def _item(event: ConversationItemAddedEvent) -> None:
            item = event.item
            if not isinstance(item, ChatMessage) or item.role not in ("user", "assistant"):
                return
            self.send_event(
                {
                    "type": "transcript",
                    "speaker": "rep" if item.role == "user" else "persona",
                    "text": item.text_content or "",
                    "final": True,
                    "interrupted": item.interrupted,
                    "metrics": _message_metrics(item),
                }
            )

        @session.on("agent_state_changed")
        def _agent_state(event: AgentStateChangedEvent) -> None:
            self.send_event({"type": "state", "agent": event.new_state})

        @session.on("user_state_changed")
        def _user_state(event: UserStateChangedEvent) -> None:
            self.send_event({"type": "state", "user": event.new_state})

        @session.on("error")
        def _error(event: ErrorEvent) -> None:
            recoverable = getattr(event.error, "recoverable", False)
            logger.warning(
                "voice pipeline error",
                extra={"session_id": self._call.session_id, "recoverable": recoverable},
            )

        self._call.on_result(self._send_result)
        self._call.agent.on_error(self._send_scoring_error)

    def _send_result(self, result: PracticeResult) -> None:
        event: dict[str, Any] = {"type": "feedback", "result": result.model_dump(mode="json")}
        if self._feedback_url:
            event["url"] = self._feedback_url
        self.send_event(event)
        self._result_sent.set()

    def _send_scoring_error(self, _: Exception) -> None:
        self.send_event(
            {
                "type": "error",
                "message": "The session ended but could not be scored; the transcript is kept "
                "and it is scored when the practice page is opened again",
            }
        )
        self._result_sent.set()

    async def run(self) -> PracticeResult | None:
        """Serve the call until the rep ends it, the persona ends it or the browser goes.

        Returns the scored result, or None when scoring failed.
        """
        writer = asyncio.create_task(self._writer(), name="voice.ws_writer")
        self._wire()
        start = self._call.start
        reader: asyncio.Task[None] | None = None
        try:
            first = await self._connection.receive()
            if isinstance(first, str):
                self.audio_in.set_sample_rate(parse_hello(first))
            await self._call.session.start(self._call.agent, record=False)
            self.send_event(
                {
                    "type": "ready",
                    "session_id": start.session_id,
                    "title": start.title,
                    "persona": start.persona,
                    "briefing": start.briefing,
                    "sample_rate": self._call.session.tts.sample_rate
                    if self._call.session.tts
                    else None,
                    "input_sample_rate": self.audio_in.sample_rate,
                    "turn_limit": start.turn_limit,
                    "time_box_minutes": start.time_box_minutes,
                }
            )
            if isinstance(first, bytes):
                self._push(first)
            reader = asyncio.create_task(self._read(), name="voice.ws_reader")
            closed = asyncio.create_task(self._call.wait_closed())
            await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if reader.done() and (error := reader.exception()) is not None:
                raise error
            return await self._end()
        except ProtocolError as exc:
            self.send_event({"type": "error", "message": str(exc)})
            await self._end()
            return None
        finally:
            if reader is not None:
                reader.cancel()
            self.audio_in.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._result_sent.wait(), timeout=5)
            self.send_event({"type": "ended"})
            self._outgoing.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=5)
            with contextlib.suppress(Exception):
                await self._connection.close()

    async def _end(self) -> PracticeResult | None:
        try:
            return await self._call.end()
        except Exception:
            return None  # logged by the agent; the browser got an error event

    def _push(self, data: bytes) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"Audio messages must be at most {MAX_MESSAGE_BYTES} bytes")
        if len(data) % 2:
            raise ProtocolError("Audio must be 16-bit PCM: an even number of bytes")
        self.audio_in.push(data)

    async def _read(self) -> None:
        while (message := await self._connection.receive()) is not None:
            if isinstance(message, bytes):
                self._push(message)
                continue
            try:
                event = json.loads(message)
            except json.JSONDecodeError:
                raise ProtocolError("Text messages must be JSON objects") from None
            kind = event.get("type") if isinstance(event, dict) else None
            if kind == "end":
                logger.info("voice practice ended by the rep", extra=self._log())
                return
            if kind == "hello":
                raise ProtocolError("`hello` must be the first message")
            raise ProtocolError(f"Unknown message type {kind!r}; expected `end` or audio")
        logger.info("voice practice socket closed by the browser", extra=self._log())

    def _log(self) -> dict[str, Any]:
        return {"session_id": self._call.session_id}


async def serve_practice_call(
    connection: Connection, call: PracticeCall, *, feedback_url: str | None = None
) -> PracticeResult | None:
    """Serve one practice call over an accepted WebSocket; see the module docstring."""
    return await PracticeSocket(connection, call, feedback_url=feedback_url).run()
