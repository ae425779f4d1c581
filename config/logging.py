"""Logging for operators: short event phrases, data in fields, personal content under `pii.`."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

REDACTED = "[redacted]"
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _is_pii(key: str) -> bool:
    return key == "pii" or key.startswith("pii.") or key.startswith("pii_")


class PiiRedactingFilter(logging.Filter):
    """Replace every `pii.*` field of a record with a marker before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(vars(record)):
            if _is_pii(key):
                setattr(record, key, REDACTED)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    """`time level logger event key=value ...`, readable in a terminal and greppable."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = " ".join(f"{k}={v!r}" for k, v in sorted(record_fields(record).items()))
        return f"{base} {fields}" if fields else base


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each record, so a process that
    swaps standard error (a test runner, a daemon) never gets a handler on a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def setup_logging(
    level: str = "INFO", *, json_lines: bool = False, redact_pii: bool = True
) -> None:
    """Configure the root logger once; called by `app.py` only."""
    handler = _StderrHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    if redact_pii:
        handler.addFilter(PiiRedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "alembic", "openai", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
