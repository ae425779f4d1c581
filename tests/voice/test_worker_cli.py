"""`coachloop voice worker` as a process: clear errors without settings, and against a fake
LiveKit server it registers under the practice agent's name and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fakes.livekit_server import FakeLiveKitServer

API_KEY = "APIclitest"
API_SECRET = "cli-test-secret-" + "c" * 24
COACHLOOP = Path(sys.executable).with_name("coachloop")


def worker_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COACHLOOP_", "LIVEKIT_", "SLACK_", "OPENAI_"))
    }
    env.update(
        COACHLOOP_DATA_DIR=str(tmp_path / "data"),
        COACHLOOP_VOICE__WHISPER_MODEL="tiny.en",
        COACHLOOP_LIVEKIT__HEALTH_PORT="0",
        **extra,
    )
    return env


def test_missing_settings_stop_the_worker_with_their_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app
    from config.settings import get_settings

    monkeypatch.setenv("COACHLOOP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIVEKIT_URL", "wss://livekit.example.com")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["voice", "worker"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 1
    assert "LIVEKIT_API_KEY" in result.output and "LIVEKIT_API_SECRET" in result.output
    assert "LIVEKIT_URL," not in result.output


@pytest.fixture
async def livekit() -> AsyncIterator[FakeLiveKitServer]:
    async with FakeLiveKitServer(api_key=API_KEY, api_secret=API_SECRET) as server:
        yield server


async def test_worker_registers_and_stops_on_sigterm(
    livekit: FakeLiveKitServer, tmp_path: Path
) -> None:
    env = worker_env(
        tmp_path,
        LIVEKIT_URL=livekit.url,
        LIVEKIT_API_KEY=API_KEY,
        LIVEKIT_API_SECRET=API_SECRET,
        COACHLOOP_LIVEKIT__AGENT_NAME="coachloop-practice-eu",
    )
    process = await asyncio.create_subprocess_exec(
        str(COACHLOOP),
        "voice",
        "worker",
        "--idle-processes",
        "0",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        worker = await livekit.next_worker()
        process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    assert worker.register is not None
    assert worker.register.agent_name == "coachloop-practice-eu"
    assert worker.claims["iss"] == API_KEY
    assert process.returncode == 0, output.decode()
    assert f"registered with LiveKit as {worker.worker_id}" in output.decode()
    await asyncio.wait_for(worker.closed.wait(), 10)
