"""HEAD on every GET route (RFC 9110 section 9.3.2): the GET's status and headers, no body.

FastAPI registers only the methods a route declares, so without this a HEAD gets 405.
`HeadAsGet` is pure ASGI: a HEAD request is routed as a GET, the body the route writes is
dropped (`content-length` stays what the GET would send), and once the headers are out
the route is told the client left, so a streaming route stops instead of running on.
"""

from __future__ import annotations

from typing import Any

import anyio

_DISCONNECT = {"type": "http.disconnect"}


class HeadAsGet:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        done = anyio.Event()

        async def head_send(message: dict) -> None:
            if done.is_set():
                return
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body":
                done.set()
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def head_receive() -> dict:
            if done.is_set():
                return _DISCONNECT
            got: list[dict] = []
            async with anyio.create_task_group() as tg:

                async def real() -> None:
                    got.append(await receive())
                    tg.cancel_scope.cancel()

                async def finished() -> None:
                    await done.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(real)
                tg.start_soon(finished)
            return got[0] if got else _DISCONNECT

        await self.app({**scope, "method": "GET"}, head_receive, head_send)
