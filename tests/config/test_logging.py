import io
import json
import logging

import pytest

from config.logging import JsonFormatter, KeyValueFormatter, PiiRedactingFilter, setup_logging


def _emit(formatter: logging.Formatter, redact: bool) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    if redact:
        handler.addFilter(PiiRedactingFilter())
    logger = logging.getLogger("test.pii")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(
        "turn scored", extra={"turn": 3, "pii.text": "my card is 4111", "pii_name": "Ana"}
    )
    return stream.getvalue()


def test_pii_fields_are_redacted_and_other_fields_kept() -> None:
    line = _emit(KeyValueFormatter("%(message)s"), redact=True)

    assert "turn scored" in line and "turn=3" in line
    assert "4111" not in line and "Ana" not in line
    assert "[redacted]" in line


def test_pii_fields_are_shown_when_redaction_is_off() -> None:
    line = _emit(KeyValueFormatter("%(message)s"), redact=False)

    assert "my card is 4111" in line


def test_json_lines_carry_fields() -> None:
    payload = json.loads(_emit(JsonFormatter(), redact=True))

    assert payload["event"] == "turn scored"
    assert payload["turn"] == 3
    assert payload["pii.text"] == "[redacted]"


def test_setup_logging_installs_one_redacting_handler(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        setup_logging("INFO")
        logging.getLogger("coachloop.test").info("hello", extra={"pii.name": "Ana"})

        assert len(root.handlers) == 1
        err = capsys.readouterr().err
        assert "hello" in err and "Ana" not in err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
