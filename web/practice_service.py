"""The practice driver, opened when the web app starts and closed when it stops.

`app.py` passes a factory that opens the driver (persona engine, turn observer, judge and
checkpointer); the web app only holds it for its lifetime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack

from scenarios import PracticeDriver, ScenarioLibrary

logger = logging.getLogger(__name__)

DriverFactory = Callable[[], AbstractAsyncContextManager[PracticeDriver]]


class PracticeService:
    """Holds one practice driver for the life of the app."""

    def __init__(self, library: ScenarioLibrary, factory: DriverFactory) -> None:
        self.library = library
        self._factory = factory
        self._stack: AsyncExitStack | None = None
        self._driver: PracticeDriver | None = None

    async def start(self) -> None:
        stack = AsyncExitStack()
        self._driver = await stack.enter_async_context(self._factory())
        self._stack = stack
        logger.info("practice driver ready", extra={"scenarios": len(self.library)})

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = None
        self._driver = None

    @property
    def driver(self) -> PracticeDriver | None:
        return self._driver
