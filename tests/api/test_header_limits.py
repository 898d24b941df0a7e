"""Oversized request heads are refused early (431) by the servers `coinlake serve` and
`coinlake run` use, over a real socket, without the server buffering them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from coinlake.serving import MAX_HEAD_BYTES, BackgroundServer

pytestmark = pytest.mark.slow

HUGE = 64 * 1024 * 1024  # what the client tries to send as one header
CHUNK = 64 * 1024


def send_huge_header(port: int, header: str = "x-api-key") -> tuple[bytes, int]:
    """Send a request whose `header` grows chunk by chunk; (the answer, bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{header}: ".encode())
        try:
            while sent < HUGE:
                s.sendall(b"a" * CHUNK)
                sent += CHUNK
            s.sendall(b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, sent


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def test_the_background_server_answers_431_to_a_huge_header():
    with BackgroundServer(hello) as server:
        answer, sent = send_huge_header(server.port)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert sent < HUGE
        many = {f"x-h{i}": "v" * 1000 for i in range(MAX_HEAD_BYTES // 1000 + 1)}  # small headers, too many
        assert httpx.get(server.url, headers=many).status_code == 431
        assert httpx.get(server.url, headers={"x-one": "v" * 9000}).status_code == 431
        assert httpx.get(server.url, headers={"x-fine": "v" * 4000}).status_code == 200


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_coinlake_serve_refuses_a_huge_header_without_growing(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "coinlake", "serve", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.1)
        before = rss_peak_kib(proc.pid)
        answer, _ = send_huge_header(port)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        grown = rss_peak_kib(proc.pid) - before
        assert grown * 1024 < HUGE // 8, f"the server's peak RSS grew by {grown} KiB"
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # and it still serves
    finally:
        proc.terminate()
        proc.wait(10)
