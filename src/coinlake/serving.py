"""Any ASGI app on uvicorn in a background thread (the simulator, and test servers)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


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
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan=self.lifespan,
            timeout_graceful_shutdown=1,
            # longer than httpx's 5 s keep-alive, so a client never reuses a connection the server just closed
            timeout_keep_alive=30,
        )
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
        hook = getattr(getattr(self.app, "state", None), "begin_shutdown", None)
        if callable(hook):  # end long-lived responses (live streams) that uvicorn would wait for
            hook()
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
