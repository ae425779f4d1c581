"""What can go wrong in the speech engines."""

from __future__ import annotations


class VoiceError(Exception):
    """Base of the voice errors; at start-up it means a model is missing or unusable."""


class RecordingError(VoiceError):
    """One call recording cannot be transcribed; a batch sets it aside and goes on.

    `kind` is a short code for summaries: `not_found`, `unsupported`, `decode`, `empty`,
    `no_speech`.
    """

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
