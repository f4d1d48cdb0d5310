"""examples/serve.py as a newcomer runs it: a subprocess on 127.0.0.1, asked over plain HTTP.

One server per backend serves a temporary root; a separate one checks Ctrl-C (SIGINT).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import pytest

from _support import BIG, SECRET, make_root

SERVE = Path(__file__).resolve().parents[1] / "examples" / "serve.py"
# backend id -> (command-line options, the name the startup line gives)
BACKENDS = {
    "asyncio": (["--backend", "asyncio"], "asyncio"),
    "trio": (["--backend", "trio"], "trio"),
    "uvloop": (["--backend", "asyncio", "--uvloop"], "asyncio+uvloop"),
}
TIMEOUT = 10.0


@dataclass
class Server:
    proc: subprocess.Popen[str]
    root: Path
    backend: str
    port: int
    first_line: str
    lines: queue.Queue[str]
    pump: threading.Thread

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)

    def get(
        self, path: str, method: str = "GET", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = self.connect()
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def rest(self) -> str:
        """Everything the server printed after its first line, once it has exited."""
        self.proc.wait(TIMEOUT)
        out = []
        while (line := self.lines.get(timeout=TIMEOUT)) != "":
            out.append(line)
        return "".join(out)


def start(root: Path, backend: str) -> Server:
    env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    proc = subprocess.Popen(
        [sys.executable, str(SERVE), str(root), "--port", "0", *BACKENDS[backend][0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # drains the pipe so the server never blocks on it; "" marks the end
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                lines.put(line)
        lines.put("")

    server = Server(proc, root, backend, 0, "", lines, threading.Thread(target=pump, daemon=True))
    server.pump.start()
    with contextlib.suppress(queue.Empty):
        server.first_line = lines.get(timeout=TIMEOUT)
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", server.first_line)
    if match is None:
        stop(server)
        pytest.fail(f"the server did not announce its URL; it printed: {server.first_line!r}")
    server.port = int(match[1])
    return server


def stop(server: Server) -> None:
    """Kill the server if it still runs; wait for it and for its output pipe to be closed."""
    if server.proc.poll() is None:
        server.proc.kill()
    server.proc.wait(TIMEOUT)
    server.pump.join(TIMEOUT)


@pytest.fixture(scope="module", params=list(BACKENDS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start(make_root(tmp_path_factory.mktemp("serve")), str(request.param))
    yield running
    stop(running)


def test_startup_line(server: Server) -> None:
    assert str(server.port) in server.first_line
    assert "zero-copy: sendfile" in server.first_line
    assert f"on {BACKENDS[server.backend][1]}," in server.first_line
    assert str(server.root) in server.first_line


def test_get_whole_file(server: Server) -> None:
    status, headers, body = server.get("/big.bin")
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(BIG).hexdigest()
    assert headers["Content-Length"] == str(len(BIG))
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["Accept-Ranges"] == "bytes"
    status, headers, body = server.get("/hello.txt")
    assert (status, body, headers["Content-Type"]) == (200, b"hello\n", "text/plain")
    mtime = (server.root / "hello.txt").stat().st_mtime
    assert headers["Last-Modified"] == formatdate(mtime, usegmt=True)


def test_head(server: Server) -> None:
    status, headers, body = server.get("/big.bin", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(len(BIG))


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("bytes=0-0", 0, 1),
        ("bytes=100-1999999", 100, 2_000_000),
        ("bytes=1048570-", 1_048_570, len(BIG)),
        ("bytes=-10", len(BIG) - 10, len(BIG)),
        (f"bytes=5-{len(BIG) + 1000}", 5, len(BIG)),
    ],
)
def test_range(server: Server, spec: str, start: int, stop: int) -> None:
    status, headers, body = server.get("/big.bin", Range=spec)
    assert status == 206
    assert body == BIG[start:stop]
    assert headers["Content-Length"] == str(stop - start)
    assert headers["Content-Range"] == f"bytes {start}-{stop - 1}/{len(BIG)}"


@pytest.mark.parametrize(
    "spec", [f"bytes={len(BIG)}-", f"bytes={len(BIG) + 5}-{len(BIG) + 9}", "bytes=-0"]
)
def test_range_not_satisfiable(server: Server, spec: str) -> None:
    status, headers, body = server.get("/big.bin", Range=spec)
    assert (status, body) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{len(BIG)}"


def test_directory_listing(server: Server) -> None:
    status, headers, body = server.get("/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'href="/hello.txt"' in page
    assert 'href="/sub/"' in page
    assert ".hidden" not in page
    status, _, body = server.get("/sub/")
    assert status == 200
    assert 'href="/sub/inner.txt"' in body.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/missing.txt",
        "/sub/missing/",
        "/.hidden",
        "/../etc/passwd",
        "/../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "//etc/passwd",
        "/%2Fetc%2Fpasswd",
        "/a%00b",
        "/hello.txt%00.png",
        "/escape.txt",
        "/up/secret.txt",
        "/up/",
        "/%ff%fe",
    ],
)
def test_not_found_and_no_escape(server: Server, path: str) -> None:
    status, _, body = server.get(path)
    assert status == 404
    assert SECRET not in body
    assert b"root:" not in body


def test_symlink_inside_root_is_served(server: Server) -> None:
    assert server.get("/alias.txt")[::2] == (200, b"hello\n")


def test_method_not_allowed(server: Server) -> None:
    status, headers, _ = server.get("/hello.txt", method="POST")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"


def test_keep_alive(server: Server) -> None:
    conn = server.connect()
    try:
        conn.request("GET", "/hello.txt")
        first = conn.getresponse()
        assert (first.status, first.read(), first.will_close) == (200, b"hello\n", False)
        sock = conn.sock
        conn.request("GET", "/big.bin", headers={"Range": "bytes=0-99"})
        second = conn.getresponse()
        assert (second.status, second.read()) == (206, BIG[:100])
        assert conn.sock is sock  # the same connection carried both
    finally:
        conn.close()


def test_pipelined_requests_then_close(server: Server) -> None:
    requests = (
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /sub/inner.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
        sock.sendall(requests)
        received = b""
        while chunk := sock.recv(65536):  # the server closes after the third answer
            received += chunk
    answers = re.findall(rb"HTTP/1\.1 (\d+) ", received)
    assert answers == [b"200", b"200", b"200"]
    assert received.count(b"hello\n") == 1
    assert received.endswith(b"inner\n")


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_stops_on_sigint(tmp_path: Path, backend: str) -> None:
    server = start(make_root(tmp_path), backend)
    try:
        assert server.get("/big.bin")[0] == 200
        server.proc.send_signal(signal.SIGINT)
        began = time.monotonic()
        output = server.rest()
        assert time.monotonic() - began < 5
        assert server.proc.returncode == 0
    finally:
        stop(server)
    assert '"GET /big.bin HTTP/1.1" 200' in output
    summary = re.search(r"zcio sent: sendfile ([\d,]+) bytes", output.splitlines()[-1])
    assert summary is not None, output
    assert int(summary[1].replace(",", "")) == len(BIG)


def test_file_shrinking_mid_transfer_closes_the_connection(server: Server) -> None:
    shrinking = server.root / f"shrink-{server.backend}.bin"
    with open(shrinking, "wb") as f:
        f.truncate(32 << 20)  # sparse: far more than the socket buffers hold
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(f"GET /{shrinking.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = sock.recv(65536)
            os.truncate(shrinking, 1 << 20)  # the server is still sending, or blocked sending
            while chunk := sock.recv(1 << 20):  # so it must close: Content-Length was a promise
                received += chunk
    finally:
        shrinking.unlink()
    head, _, body = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {32 << 20}".encode() in head
    assert 0 < len(body) < 32 << 20
