"""zcio_tornado on a real Tornado server over loopback, against stock Tornado.

Each server is a subprocess running tests/apps/tornado_app.py (``zcio_tornado.install()``, or
Tornado's own with ``--stock``), on asyncio's default loop or uvloop, native or with zcio's
fallback forced (``ZCIO_DISABLE=all``). Its /stats reports zcio's bytes per method,
zcio_tornado's counts and its open fds, so the tests can prove how the bytes went and that
nothing leaked. Requests go over plain sockets, so that what is on the wire is what is checked.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import BIG, free_port, make_data, make_root, sha, stop_server, wait_for_server

pytest.importorskip("tornado")

APP = Path(__file__).parent / "apps" / "tornado_app.py"
SMALL = make_data(300 * 1024 + 3, seed=123)
LARGE = 256 << 20  # sparse: larger than any socket buffer, nearly nothing on disk
VARYING = ("date",)  # headers that differ between two answers to the same request


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[str]
    tls_port: int = 0

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=30).json())


def start(name: str, root: Path, *, tls: tuple[str, str] | None = None) -> Server:
    port = free_port()
    args = [sys.executable, str(APP), str(port), str(root)]
    if name == "stock":
        args.append("--stock")
    if "uvloop" in name:
        args += ["--loop", "uvloop"]
    tls_port = 0
    if tls is not None:
        tls_port = free_port()
        args += ["--tls-port", str(tls_port), "--cert", tls[0], "--key", tls[1]]
    env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    if name.endswith("fallback"):
        env["ZCIO_DISABLE"] = "all"
    proc = subprocess.Popen(
        args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    wait_for_server(proc, f"http://127.0.0.1:{port}/tiny", name=name)
    return Server(name, port, proc, tls_port)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_root(tmp_path_factory.mktemp("tornado-served"))
    (root / "small.bin").write_bytes(SMALL)
    (root / "empty.bin").write_bytes(b"")
    with open(root / "large.bin", "wb") as f:
        f.truncate(LARGE)
    return root


@pytest.fixture(scope="module")
def stock(root: Path) -> Iterator[Server]:
    srv = start("stock", root)
    yield srv
    stop_server(srv.proc)


@pytest.fixture(scope="module", params=["asyncio", "uvloop", "asyncio-fallback", "uvloop-fallback"])
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    srv = start(request.param, root)
    yield srv
    stop_server(srv.proc)


class Client:
    """HTTP/1.1 on one keep-alive socket: each answer read by its Content-Length, exactly."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, target: str, method: str = "GET", headers: dict[str, str] | None = None) -> None:
        lines = [f"{method} {target} HTTP/1.1", "Host: x"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self) -> bool:
        more = self.sock.recv(1 << 20)
        self.buffer += more
        return bool(more)

    def answer(self, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed before the headers")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError(f"closed after {len(self.buffer)} of {length} bytes")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def request(
        self, target: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        self.send(target, method, headers)
        return self.answer(method)


def compared(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, dict[str, str], str]:
    status, headers, body = answer
    return status, {k: v for k, v in headers.items() if k not in VARYING}, sha(body)


def wait_for_fds(server: Server, wanted: int) -> int:
    """The server's open fds, polled until they are back to ``wanted`` (bounded: 20 s)."""
    deadline = time.monotonic() + 20
    while (fds := int(server.stats()["fds"])) > wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    return fds


REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("/static/big.bin", "GET", {}),
    ("/static/small.bin", "GET", {}),
    ("/static/hello.txt", "GET", {}),
    ("/static/empty.bin", "GET", {}),
    ("/static/big.bin", "HEAD", {}),
    ("/static/big.bin", "GET", {"Range": "bytes=0-0"}),
    ("/static/big.bin", "GET", {"Range": "bytes=100-"}),
    ("/static/big.bin", "GET", {"Range": "bytes=-5000"}),
    ("/static/big.bin", "GET", {"Range": "bytes=1000-2999999"}),
    ("/static/big.bin", "GET", {"Range": "bytes=0-"}),
    ("/static/big.bin", "GET", {"Range": "bytes=99999999-"}),
    ("/static/big.bin", "GET", {"Range": "bytes=5-1"}),
    ("/static/big.bin", "GET", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}),
    ("/static/small.bin", "GET", {}),  # and keep-alive still works after all of it
]


def test_whole_files_ranges_and_headers_as_stock_on_one_connection(
    server: Server, stock: Server
) -> None:
    before = server.stats()
    ours, theirs = Client(server.port), Client(stock.port)
    try:
        for target, method, headers in REQUESTS:
            mine = ours.request(target, method, headers)
            assert compared(mine) == compared(theirs.request(target, method, headers)), target
        etag = ours.request("/static/big.bin")[1]["etag"]
        assert ours.request("/static/big.bin", headers={"If-None-Match": etag})[0] == 304
        status, _, body = ours.request("/static/big.bin", headers={"Range": "bytes=1000-"})
        assert status == 206 and sha(body) == sha(BIG[1000:])
        assert sha(ours.request("/static/big.bin")[2]) == sha(BIG)
        assert sha(ours.request("/static/small.bin")[2]) == sha(SMALL)
    finally:
        ours.close()
        theirs.close()
    after = server.stats()
    moved = {k: v - before["bytes"].get(k, 0) for k, v in after["bytes"].items()}
    bodies = 3 * len(BIG) + 3 * len(SMALL)  # at least these, whole
    if "fallback" in server.name:
        assert moved.get("sendfile", 0) == 0 and sum(moved.values()) >= bodies, moved
    else:
        assert moved.get("sendfile", 0) >= bodies, moved
    assert after["counts"].get("thread", 0) == before["counts"].get("thread", 0)


def test_two_hundred_concurrent_downloads(server: Server) -> None:
    fds = int(server.stats()["fds"])

    async def one() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /static/small.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return sha(body)

    async def many() -> list[str]:
        return await asyncio.gather(*(one() for _ in range(200)))

    assert set(asyncio.run(many())) == {sha(SMALL)}
    assert wait_for_fds(server, fds) <= fds


def test_client_reset_mid_body_gives_fds_back(server: Server) -> None:
    fds = int(server.stats()["fds"])
    for _ in range(3):
        with socket.socket() as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.settimeout(60)
            c.connect(("127.0.0.1", server.port))
            c.sendall(b"GET /static/large.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 256 * 1024:
                got += len(c.recv(65536))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert wait_for_fds(server, fds) <= fds
    client = Client(server.port)
    try:
        assert sha(client.request("/static/big.bin")[2]) == sha(BIG)
    finally:
        client.close()


def test_file_that_shrinks_while_sent_aborts_the_connection(server: Server, root: Path) -> None:
    name = f"shrink-{server.name}.bin"
    with open(root / name, "wb") as f:
        f.truncate(32 << 20)
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.settimeout(60)
        c.connect(("127.0.0.1", server.port))
        # Two requests at once: the second's answer must never follow a short first body.
        c.sendall(f"GET /static/{name} HTTP/1.1\r\nHost: x\r\n\r\nGET /tiny HTTP/1.1\r\n".encode())
        c.sendall(b"Host: x\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            data += c.recv(65536)
        os.truncate(root / name, 8 << 20)  # the server is stuck far below this: sent at most
        try:  # what the socket buffers hold, then a close (or a reset: /tiny was left unread)
            while more := c.recv(1 << 20):
                data += more
        except ConnectionResetError:
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 33554432" in head.lower()
    assert len(body) <= 8 << 20 and body.count(b"\0") == len(body), "not a short body"
    assert b"HTTP/1.1" not in body
    client = Client(server.port)
    try:
        assert client.request("/static/hello.txt")[2] == b"hello\n"
    finally:
        client.close()


TRAVERSALS = [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/sub/../../secret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static/escape.txt",
    "/static/up/secret.txt",
    "/static/alias.txt",
    "/static/sub",
    "/static/sub/",
    "/static//etc/passwd",
    "/static/%00",
    "/static/missing",
    "/static/.git/config",
]


def test_traversal_answered_as_tornado_answers(server: Server, stock: Server) -> None:
    for target in TRAVERSALS:
        ours, theirs = Client(server.port), Client(stock.port)
        try:
            mine = compared(ours.request(target))
            assert mine == compared(theirs.request(target)), target
        finally:
            ours.close()
            theirs.close()
        assert b"outside the root" not in ours.buffer


@pytest.fixture(scope="module")
def tls_server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    where = tmp_path_factory.mktemp("tornado-tls")
    cert.private_key_and_cert_chain_pem.write_to_path(str(where / "cert.pem"))
    cert.private_key_pem.write_to_path(str(where / "key.pem"))
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    srv = start("asyncio", root, tls=(str(where / "cert.pem"), str(where / "key.pem")))
    srv.name = str(where / "ca.pem")
    yield srv
    stop_server(srv.proc)


def test_tls_goes_through_tornados_writes(tls_server: Server) -> None:
    before = tls_server.stats()
    context = ssl.create_default_context(cafile=tls_server.name)
    base = f"https://127.0.0.1:{tls_server.tls_port}/static/"
    with httpx.Client(verify=context, timeout=60) as client:
        whole = client.get(base + "big.bin")
        part = client.get(base + "big.bin", headers={"Range": "bytes=10-"})
    assert sha(whole.content) == sha(BIG) and sha(part.content) == sha(BIG[10:])
    after = tls_server.stats()
    assert after["counts"]["thread"] - before["counts"].get("thread", 0) == 2
    assert after["bytes"].get("sendfile", 0) == before["bytes"].get("sendfile", 0)
