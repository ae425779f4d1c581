from pathlib import Path

import pytest
from pydantic import BaseModel

from config.settings import Settings

ENV_EXAMPLE = Path(".env.example")


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.extend(_env_names(annotation, f"{prefix}{name.upper()}__"))
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_env_example_lists_every_setting() -> None:
    listed = ENV_EXAMPLE.read_text()

    missing = [n for n in _env_names(Settings, "COACHLOOP_") if n not in listed]

    assert missing == []


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings()

    assert settings.resolved_database_url == "sqlite:///data/coachloop.db"
    assert not settings.slack_enabled
    assert not settings.llm_enabled


def test_database_url_is_read_from_either_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/db")

    assert Settings().resolved_database_url == "postgresql://x@h/db"


def test_nested_settings_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COACHLOOP_LLM__API_KEY", "sk-secret")
    monkeypatch.setenv("COACHLOOP_LLM__MAX_CONCURRENCY", "8")

    settings = Settings()

    assert settings.llm.max_concurrency == 8
    assert settings.llm_enabled
    assert "sk-secret" not in repr(settings)


def test_env_file_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("COACHLOOP_LOG_LEVEL=DEBUG\n")

    settings = Settings(_env_file=tmp_path / ".env")

    assert settings.log_level == "DEBUG"


def test_a_bad_setting_is_named_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app import app
    from config.settings import get_settings

    monkeypatch.setenv("COACHLOOP_JOBS__BATCH_SIZE", "lots")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["org", "show"])
    get_settings.cache_clear()

    assert result.exit_code == 1
    assert (
        "Bad setting (COACHLOOP_JOBS__BATCH_SIZE: Input should be a valid integer" in result.output
    )
    assert "Traceback" not in result.output
