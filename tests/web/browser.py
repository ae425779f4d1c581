"""Headless Chromium over the real web app, for page tests.

The browser is Debian's `chromium` (`make test` installs it), driven by Playwright with
`executable_path`; Playwright's own browser downloads are never used. The app runs under
uvicorn on 127.0.0.1 on a free port, over a private copy of the seeded organisation.

Other page tests reuse the parts:

```python
from tests.web.browser import chromium, live_server, shoot

with chromium(extra_args=["--use-fake-device-for-media-stream"]) as browser:
    with live_server(app) as url:
        page = browser.new_page()
        page.goto(url + "/practice")
        shoot(page, "practice-voice")
```

or the fixtures (`browser`, `web_url`, `web_page`, `shoot_page`), which `tests/web/conftest.py`
makes available to every test in `tests/web/`. A module asks for extra Chromium flags by
overriding the `chromium_extra_args` fixture.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

if TYPE_CHECKING:
    from fastapi import FastAPI
    from playwright.sync_api import Browser, Page

    from tests.web.seed import Seed

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
"""Flags every test browser gets: no network of its own, no first-run or update work."""

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""Screenshots land here (git ignores it); their paths are listed at the end of the run."""

NO_CHROMIUM = (
    f"browser tests need Debian's Chromium at {CHROMIUM}; `make test` installs it "
    "(apt-get install chromium chromium-driver)"
)

_saved: list[str] = []


def require_chromium() -> None:
    """Skip the calling test, saying what to install, when Chromium is missing."""
    if not CHROMIUM.is_file():
        pytest.skip(NO_CHROMIUM)


def launch_options(extra_args: Sequence[str] = ()) -> dict[str, Any]:
    """Keyword arguments for `playwright.chromium.launch`, sync or async API.

    Playwright starts Chromium with a fresh, empty temporary profile (`--user-data-dir`)
    for every launch and removes it afterwards.
    """
    return {
        "executable_path": str(CHROMIUM),
        "headless": True,
        "chromium_sandbox": False,
        "args": [*CHROMIUM_ARGS, *extra_args],
    }


@contextmanager
def chromium(extra_args: Sequence[str] = ()) -> Iterator[Browser]:
    """A headless Chromium, closed on exit; skips the test when Chromium is missing."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options(extra_args))
        try:
            yield browser
        finally:
            browser.close()


def _free_socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


@contextmanager
def live_server(app: FastAPI, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve `app` with uvicorn in a thread on a free port; yields the base URL.

    The socket is bound before the server starts, so the port cannot be taken in between.
    """
    sock = _free_socket(host)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    problem: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported to the test below
            problem.append(exc)

    thread = threading.Thread(target=run, name="web-live-server", daemon=True)
    thread.start()
    try:
        for _ in range(400):
            if server.started or problem or not thread.is_alive():
                break
            threading.Event().wait(0.025)
        if not server.started:
            raise RuntimeError(f"the web app did not start on {host}:{port}: {problem}")
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "page"


def shoot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a screenshot under `test-artifacts/` and list it in the run's summary."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{_slug(name)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    _saved.append(str(path))
    print(f"screenshot: {path}")  # noqa: T201 (shown with the test's output)
    return path


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium_extra_args() -> list[str]:
    """Extra Chromium flags for a module's browser; override it in the module to add some."""
    return []


@pytest.fixture(scope="module")
def browser(chromium_extra_args: list[str]) -> Iterator[Browser]:
    """One headless Chromium per test module (each test gets its own context)."""
    with chromium(chromium_extra_args) as found:
        yield found


@pytest.fixture(scope="module")
def web_seed(tmp_path_factory: pytest.TempPathFactory, _sqlite_seed: Path) -> Iterator[Seed]:
    """A private copy of the seeded organisation on SQLite for one test module."""
    from tests.web.conftest import sqlite_copy

    require_chromium()
    seed = sqlite_copy(_sqlite_seed, tmp_path_factory.mktemp("browser") / "data")
    yield seed
    seed.engine.dispose()


@pytest.fixture(scope="module")
def web_app(web_seed: Seed) -> FastAPI:
    """The real app over `web_seed`, its clock fixed at the seed's `NOW`."""
    from tests.web.conftest import make_app

    return make_app(web_seed)


@pytest.fixture(scope="module")
def web_url(web_app: FastAPI) -> Iterator[str]:
    """The base URL of `web_app` served by uvicorn on 127.0.0.1."""
    with live_server(web_app) as url:
        yield url


@pytest.fixture
def web_page(browser: Browser, web_url: str) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies), at a desktop size."""
    context = browser.new_context(base_url=web_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    found = context.new_page()
    yield found
    context.close()


@pytest.fixture
def shoot_page(
    request: pytest.FixtureRequest, record_property: Callable[[str, object], None]
) -> Callable[[Page, str], Path]:
    """`shoot_page(page, "what")` saves a screenshot named after the test and attaches its
    path to the test's report (JUnit property and the end-of-run list)."""

    def take(target: Page, what: str) -> Path:
        path = shoot(target, f"{request.node.name}-{what}")
        record_property(f"screenshot-{what}", str(path))
        return path

    return take


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the screenshots the browser tests saved."""
    if not _saved:
        return
    terminalreporter.section("browser screenshots")
    for path in _saved:
        terminalreporter.write_line(path)
