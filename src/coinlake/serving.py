"""ASGI apps on uvicorn: in a background thread (`BackgroundServer`: the API under
`coinlake run`, the simulator, test servers) or in the foreground (`serve_forever`:
`coinlake serve`), both through `server_config`, with request heads bounded.

Request heads are bounded before they are buffered. uvicorn's httptools protocol (the one
`uvicorn[standard]` picks) has no limit at all: httptools concatenates a header's pieces
until the header ends and uvicorn keeps the URL and every header, so one 200 MiB header
costs 200 MiB (h11's `h11_max_incomplete_event_size` bounds only the h11 protocol).
`BoundedHttpToolsProtocol` counts the bytes of each request head (request line and
headers) as they arrive, before the parser sees them, and answers 431 and closes the
connection once the head passes `MAX_HEAD_BYTES` or one header line `MAX_HEADER_BYTES`
(see `TooLarge`); a connection so holds at most one read beyond the limit.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 32 * 1024  # request line and all headers of one request
MAX_HEADER_BYTES = 8 * 1024  # one header line (name and value), and the request line
_END = b"\r\n\r\n"


class TooLarge(Exception):
    """A request head or header over its limit (raised inside the parser's callbacks)."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with request heads bounded: 431, then the connection closes."""

    max_head = MAX_HEAD_BYTES
    max_header = MAX_HEADER_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # bytes arriving now belong to a request head
        self._head_bytes = 0
        self._tail = b""  # the last bytes seen in the head, to find an end marker split across reads

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            seen = self._tail + data
            end = seen.find(_END)
            self._head_bytes += len(data) if end < 0 else max(0, end + len(_END) - len(self._tail))
            self._tail = seen[-(len(_END) - 1) :]
            if self._head_bytes > self.max_head:
                self._refuse()
                return
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.max_header:
            self._refuse()
            raise TooLarge  # stops the parser; uvicorn's 400 for it is not sent (`send_400_response`)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) > self.max_header:
            self._refuse()
            raise TooLarge
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # closing: already answered 431
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._tail = False, 0, b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head = True
        super().on_message_complete()

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        body = b"request header fields too large"
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()


def server_config(app: Any, host: str = "127.0.0.1", port: int = 0, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration every coinlake server uses (bounded request heads)."""
    defaults: dict[str, Any] = {
        "log_level": "warning",
        "log_config": None,  # records propagate to the handlers the caller configured (the CLI's --log-format)
        "access_log": False,
        # longer than httpx's 5 s keep-alive, so a client never reuses a connection the server just closed
        "timeout_keep_alive": 30,
        "http": BoundedHttpToolsProtocol,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,  # only if someone picks h11
    }
    return uvicorn.Config(app, host=host, port=port, **{**defaults, **options})


class _ForegroundServer(uvicorn.Server):
    """uvicorn waits for open responses before it stops, and a live stream never finishes by
    itself: on the exit signal (Ctrl-C), end them first (`app.state.begin_shutdown()`)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        _begin_shutdown(self.config.app)
        super().handle_exit(sig, frame)


def _begin_shutdown(app: Any) -> None:
    hook = getattr(getattr(app, "state", None), "begin_shutdown", None)
    if callable(hook):
        hook()


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve `app` in the foreground until interrupted (`coinlake serve`)."""
    _ForegroundServer(server_config(app, host, port)).run()


class BackgroundServer:
    """Any ASGI app on uvicorn in a daemon thread (port 0: a free port, bound up front)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, lifespan: str = "off"):
        self.app = app
        self.lifespan = lifespan
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from None
        self.port = sock.getsockname()[1]
        config = server_config(self.app, lifespan=self.lifespan, timeout_graceful_shutdown=1)
        self._server = server = uvicorn.Server(config)

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # surfaced by start() instead of dying silently
                self._error = exc
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"uvicorn-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server on {self.url} did not start: {self._error or 'timeout'}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        _begin_shutdown(self.app)  # end long-lived responses (live streams) that uvicorn would wait for
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
