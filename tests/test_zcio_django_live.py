"""zcio_django on real servers over loopback: zcio_uvicorn (zerocopysend, counted as
sendfile), stock uvicorn (bounded chunks) and granian (pathsend).

Each server is a subprocess running tests/apps/django_app.py; its /stats view reports
zcio's counters, the process's open fds and its peak RSS, so the tests can prove how the
bytes went, that memory stayed bounded and that nothing leaked.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

pytest.importorskip("django")

APPS = Path(__file__).parent / "apps"
DATA = make_data(3 * 1024 * 1024 + 7, seed=83)
SMALL = make_data(300 * 1024 + 3, seed=84)
GIB = 1 << 30
ZERO_BLOCK = bytes(1 << 20)


@dataclass
class Server:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[str]

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/stats", timeout=10).json())

    def sendfile_bytes(self) -> int:
        return int(self.stats()["bytes"].get("sendfile", 0))

    def zcio_bytes(self) -> int:
        """Every byte zcio moved in the server, by any method (sendfile or the fallback)."""
        return sum(int(n) for n in self.stats()["bytes"].values())


SERVERS = {
    "zcio_uvicorn": ("-m", "uvicorn", "--http", "zcio_uvicorn:HttpToolsProtocol"),
    # zcio's forced fallback (ZCIO_DISABLE=all): zerocopysend still advertised and taken, the
    # bytes copied through user space by zcio.
    "zcio_uvicorn-h11-uvloop-fallback": (
        *("-m", "uvicorn", "--http", "zcio_uvicorn:H11Protocol", "--loop", "uvloop"),
    ),
    "uvicorn": ("-m", "uvicorn", "--http", "httptools"),
    "granian": ("-m", "granian", "--interface", "asgi", "--workers", "1"),
}


def start(name: str, root: Path) -> Server:
    port = free_port()
    if name == "granian":
        args = [
            *SERVERS[name],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    else:
        args = [*SERVERS[name], "--port", str(port), "--log-level", "warning", "--no-access-log"]
    env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    env["ZCIO_DJANGO_ROOT"] = str(root)
    if name.endswith("-fallback"):
        env["ZCIO_DISABLE"] = "all"
    proc = subprocess.Popen(
        [sys.executable, *args, "django_app:application"],
        cwd=APPS,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/text", name=name)
    return Server(name, url, port, proc)


def stop(server: Server) -> str:
    return stop_server(server.proc)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("django-served")
    (root / "data.bin").write_bytes(DATA)
    (root / "small.bin").write_bytes(SMALL)
    with open(root / "sparse-1GiB.bin", "wb") as f:
        f.truncate(GIB)  # sparse: a gigabyte of zeros, on disk nearly nothing
    return root


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    srv = start(request.param, root)
    yield srv
    stop(srv)


def get_raw(server: Server, target: str, *, zeros: bool = False) -> tuple[bytes, int, str]:
    """GET ``target`` on a plain socket with ``Connection: close``: the status line and
    headers, the body's size and SHA-256 (hashed as it comes, never held whole). Cheaper
    than an HTTP client, so that the server, not the client, is what the test exercises.

    ``zeros``: the body must be all zero bytes; each read is compared with zeros (memcmp
    speed) instead of hashed, and the digest is ``"zeros"`` if every byte was zero."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as c:
        c.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        head = b""
        digest = hashlib.sha256()
        size = 0
        all_zero = True
        while n := c.recv_into(buffer):
            if not head:
                first = bytes(view[:n])
                if b"\r\n\r\n" not in first:
                    raise AssertionError("headers split across reads")
                head, _, rest = first.partition(b"\r\n\r\n")
                chunk: bytes | memoryview = rest
            else:
                chunk = view[:n]
            if zeros:
                all_zero = all_zero and chunk == ZERO_BLOCK[: len(chunk)]
            else:
                digest.update(chunk)
            size += len(chunk)
    if zeros:
        return head, size, "zeros" if all_zero else "not zeros"
    return head, size, digest.hexdigest()


def zero_copy(server: Server) -> bool:
    """zcio_uvicorn with sendfile allowed: every file byte goes by sendfile(2)."""
    return server.name.startswith("zcio_uvicorn") and not server.name.endswith("-fallback")


def zcio_sends(server: Server) -> bool:
    """zcio_uvicorn, native or forced fallback: zcio moves (and counts) every file byte."""
    return server.name.startswith("zcio_uvicorn")


@pytest.mark.parametrize(
    "url", ["/file?path={root}/data.bin", "/serve/data.bin", "/static/data.bin"]
)
def test_downloads_whole_and_counted(server: Server, root: Path, url: str) -> None:
    before, before_all = server.sendfile_bytes(), server.zcio_bytes()
    r = httpx.get(server.url + url.format(root=quote(str(root))), timeout=20)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(DATA))
    assert sha(r.content) == sha(DATA)
    # zcio_uvicorn sends the file with sendfile(2), or copies it when forced to fall back;
    # the other servers never call zcio at all.
    assert server.sendfile_bytes() - before == (len(DATA) if zero_copy(server) else 0)
    assert server.zcio_bytes() - before_all == (len(DATA) if zcio_sends(server) else 0)


def test_head_and_attachment(server: Server, root: Path) -> None:
    path = quote(str(root / "data.bin"))
    r = httpx.head(server.url + f"/file?path={path}", timeout=20)
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(DATA))
    r = httpx.get(
        server.url + f"/file?path={path}&attachment=1&filename=r%C3%A9sum%C3%A9.bin", timeout=20
    )
    assert r.headers["content-disposition"] == ("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.bin")
    assert sha(r.content) == sha(DATA)


@pytest.mark.slow
def test_one_gibibyte_with_bounded_memory(server: Server, root: Path) -> None:
    """1 GiB through Django with the server's peak RSS growing by far less than the file
    (stock Django's handler grows by about the file's size)."""
    if server.name.endswith("-fallback"):
        pytest.skip("1 GiB once per kind of server: zcio's fallback sends what native does")
    before = server.stats()
    digest = hashlib.sha256()
    size = 0
    with httpx.stream("GET", server.url + f"/serve/{quote('sparse-1GiB.bin')}", timeout=120) as r:
        for chunk in r.iter_raw(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    zeros = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(1024):
        zeros.update(block)
    assert size == GIB
    assert digest.hexdigest() == zeros.hexdigest()
    after = server.stats()
    growth_mib = (after["peak_rss_kb"] - before["peak_rss_kb"]) / 1024
    assert growth_mib < 64, f"{server.name}: peak RSS grew by {growth_mib:.0f} MiB"
    if zero_copy(server):
        assert after["bytes"]["sendfile"] - before["bytes"].get("sendfile", 0) == GIB


def test_client_disconnect_mid_body_leaks_nothing(server: Server, root: Path) -> None:
    baseline = server.stats()["fds"]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
            c.sendall(b"GET /serve/sparse-1GiB.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 4 << 20:
                got += len(c.recv(1 << 20))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    deadline = time.monotonic() + 15
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline
    assert httpx.get(server.url + "/text", timeout=10).status_code == 200


def test_file_that_shrinks_while_sent(server: Server, tmp_path: Path) -> None:
    """The Content-Length promised the whole file; the file then lost half. The client gets a
    prefix of the file and the connection ends (never a hang, never wrong bytes)."""
    path = tmp_path / "shrinking.bin"
    path.write_bytes(DATA)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
        c.sendall(f"GET /shrink?path={quote(str(path))} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = bytearray()
        while chunk := c.recv(1 << 20):  # ends: the server closes, it does not hang
            raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    if head:
        assert f"content-length: {len(DATA)}".encode() in head.lower()
    assert len(body) < len(DATA)
    assert body == DATA[: len(body)]
    assert httpx.get(server.url + "/text", timeout=10).status_code == 200


def test_two_hundred_concurrent_downloads(server: Server, root: Path) -> None:
    baseline = server.stats()["fds"]
    before = server.sendfile_bytes()
    target = f"/file?path={quote(str(root / 'small.bin'))}"

    def download(_: int) -> tuple[int, str]:
        head, size, digest = get_raw(server, target)
        assert head.startswith(b"HTTP/1.1 200")
        return size, digest

    with ThreadPoolExecutor(max_workers=200) as pool:
        got = list(pool.map(download, range(200)))
    assert got == [(len(SMALL), sha(SMALL))] * 200
    if zero_copy(server):
        assert server.sendfile_bytes() - before == 200 * len(SMALL)
    deadline = time.monotonic() + 15
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline
