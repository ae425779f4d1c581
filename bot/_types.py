"""The small parts of Bolt's listener arguments that the listeners use.

Bolt injects arguments by name, not by type, so listeners are typed against these narrow
Protocols; the recording fakes in the tests satisfy them as well as Bolt's own objects do.
"""

from __future__ import annotations

from typing import Any, Protocol


class Ack(Protocol):
    async def __call__(self, **kwargs: Any) -> Any: ...


class Respond(Protocol):
    async def __call__(self, **kwargs: Any) -> Any: ...


class SlackClient(Protocol):
    """The Web API methods the listeners call (an `AsyncWebClient` has them all)."""

    async def chat_postMessage(self, **kwargs: Any) -> Any: ...

    async def chat_update(self, **kwargs: Any) -> Any: ...

    async def conversations_open(self, **kwargs: Any) -> Any: ...

    async def views_open(self, **kwargs: Any) -> Any: ...

    async def views_publish(self, **kwargs: Any) -> Any: ...

    async def users_info(self, **kwargs: Any) -> Any: ...

    async def files_upload_v2(self, **kwargs: Any) -> Any: ...
