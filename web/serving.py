"""Serving the web app in the foreground, with other edges of the same process beside it.

`coachloop serve` and `coachloop run` call `serve`: uvicorn runs the app until Ctrl+C (or
SIGTERM); each extra edge is an async context manager entered before the server starts (it
may mount routes onto the app, e.g. the Slack bot's `/slack/events` in HTTP mode, or open a
Socket Mode connection) and left after the server has stopped.

```python
await serve(app, listen("127.0.0.1", 8000), edges=[slack_edge])
```
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger(__name__)

Edge = Callable[[FastAPI], AbstractAsyncContextManager[object]]
"""Something else the process runs while the web app is up, given the app to mount onto."""


class ListenError(OSError):
    """The web app's address cannot be listened on; the message says what to change."""


def listen(host: str, port: int) -> socket.socket:
    """Bind the web app's address now, so a taken port is reported before anything starts.

    Raises:
        ListenError: The port is taken, or the host is not an address of this machine.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(
            f"The web app cannot listen on {host}:{port} ({exc.strerror or exc}); another "
            "program may be using the port: stop it, or choose another with --port or "
            "COACHLOOP_WEB__PORT (the address: --host or COACHLOOP_WEB__HOST)"
        ) from None


def server_for(app: FastAPI) -> uvicorn.Server:
    """A uvicorn server for the app, with coachloop's logging left in place.

    `proxy_headers` stays off: the client address must be the real peer, because the
    trusted proxy header is only believed from `trusted_proxies`.
    """
    config = uvicorn.Config(app, proxy_headers=False, log_config=None, lifespan="on")
    return uvicorn.Server(config)


async def serve(
    app: FastAPI,
    sock: socket.socket,
    *,
    edges: Sequence[Edge] = (),
    server: uvicorn.Server | None = None,
) -> None:
    """Run the web app on a listening socket (from `listen`) until the server stops, with
    `edges` running for as long.

    Ctrl+C and SIGTERM stop the server gracefully (uvicorn handles them, then passes the
    signal on, so the caller sees `KeyboardInterrupt` after a Ctrl+C).
    """
    server = server or server_for(app)
    async with AsyncExitStack() as stack:
        for edge in edges:
            await stack.enter_async_context(edge(app))
        host, port = sock.getsockname()[:2]
        logger.info("web app serving", extra={"host": host, "port": port, "edges": len(edges)})
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()
