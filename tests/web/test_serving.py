"""Serving the web app in the foreground: edges beside it, a taken port, and who the main
job tells people to sign in as."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.web.conftest import make_app
from tests.web.seed import NOW, PASSWORD, Seed
from web.serving import ListenError, listen, serve, server_for
from web.users import demo_sign_ins, set_password


async def test_the_app_serves_with_its_edges_running_for_as_long(sqlite_seed: Seed) -> None:
    app = make_app(sqlite_seed)
    events: list[str] = []

    def edge(web_app: FastAPI) -> AbstractAsyncContextManager[None]:
        @asynccontextmanager
        async def running() -> AsyncIterator[None]:
            assert web_app is app
            events.append("started")
            try:
                yield
            finally:
                events.append("stopped")

        return running()

    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = server_for(app)
    task = asyncio.create_task(serve(app, sock, edges=[edge], server=server))
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        health = await client.get("/healthz")
        login = await client.get("/login")
    assert events == ["started"]
    server.should_exit = True
    await asyncio.wait_for(task, 10)

    assert health.json() == {"status": "ok"}
    assert login.status_code == 200 and "Sign in" in login.text
    assert events == ["started", "stopped"]
    assert sock.fileno() == -1  # closed with the server


def test_a_taken_port_is_named_with_the_setting_to_change() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        with pytest.raises(ListenError) as raised:
            listen("127.0.0.1", port)
    finally:
        taken.close()

    assert f"127.0.0.1:{port}" in str(raised.value)
    assert "--port" in str(raised.value) and "COACHLOOP_WEB__PORT" in str(raised.value)


def test_serve_stops_before_starting_when_the_port_is_taken(tmp_path: Path) -> None:
    from app import app as cli

    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        result = CliRunner().invoke(
            cli,
            [
                "--database-url",
                f"sqlite:///{tmp_path / 'coachloop.db'}",
                "serve",
                "--port",
                str(port),
                "--no-practice",
            ],
            env={"COACHLOOP_DATA_DIR": str(tmp_path)},
        )
    finally:
        taken.close()

    assert result.exit_code == 1, result.output
    assert "cannot listen" in result.output and "--port" in result.output
    assert "Ctrl+C" not in result.output


def test_the_demo_sign_ins_are_people_whose_password_is_still_the_demo_one(
    sqlite_seed: Seed,
) -> None:
    found = demo_sign_ins(sqlite_seed.engine, password=PASSWORD)

    assert found["manager"].external_id == "mgr-north"  # one team each; the first by id
    assert found["admin"].external_id == "admin"
    assert found["rep"].access == "rep" and found["rep"].team_id is not None

    set_password(sqlite_seed.engine, "mgr-north", "a-real-password-now", now=NOW)
    set_password(sqlite_seed.engine, "admin", "a-real-password-now", now=NOW)
    again = demo_sign_ins(sqlite_seed.engine, password=PASSWORD)

    assert again["manager"].external_id == "mgr-south"
    assert "admin" not in again
