"""zcio_hypercorn live, over loopback, on hypercorn's asyncio, uvloop and trio workers, native,
and on asyncio and trio with zcio's methods forced off (``ZCIO_DISABLE=all``: the user-space
copy).

The servers are real hypercorn processes started with zcio_hypercorn's command line
(``python -m zcio_hypercorn``, and the ``zcio-hypercorn`` script for ``--workers 2``), serving
tests/apps/hypercorn_app.py: zcio_starlette's FileResponse and StaticFiles, and raw ASGI routes
that send ``zerocopysend`` (slices, chunked) and ``pathsend``. The app's /stats reports zcio's
counters in the worker, so each test proves which method moved the bytes, and the hashes prove
what arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from _support import free_port, make_data, sha, stop_server, wait_for_server

APPS = Path(__file__).parent / "apps"
DATA = make_data(5 * 1024 * 1024 + 13, seed=220)  # larger than any socket buffer here
SMALL = make_data(4096, seed=221)
SCRIPT = Path(sys.executable).parent / "zcio-hypercorn"
SHRINK_ERROR = "promised bytes; connection aborted"
EXTENSIONS = ["http.response.pathsend", "http.response.zerocopysend"]
WORKERS = ["asyncio", "uvloop", "trio"]
# A server's start (a fresh interpreter, and a spawned worker) is part of its first test.
pytestmark = pytest.mark.timeout(180)


@dataclass
class Server:
    worker: str
    mode: str
    url: str
    port: int
    proc: subprocess.Popen[str]
    pid: int = 0  # the process that serves (hypercorn's spawned worker, or itself)

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/stats", timeout=20).json())

    def moved(self) -> dict[str, int]:
        return dict(self.stats()["bytes"])

    def fds(self) -> int:
        """The serving process's open fds, read from /proc: no connection of ours among them
        (hypercorn holds a connection its client closed until the keep-alive timeout)."""
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def fd_list(self) -> list[str]:
        folder = f"/proc/{self.pid}/fd"
        names = []
        for name in os.listdir(folder):
            with contextlib.suppress(OSError):
                names.append(os.readlink(f"{folder}/{name}"))
        return sorted(names)

    @property
    def native(self) -> bool:
        return self.mode == "native"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hypercorn-live")
    (root / "data.bin").write_bytes(DATA)
    (root / "small.bin").write_bytes(SMALL)
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(256 << 20)  # large enough to be cut mid-body
    return root


def start(
    root: Path, worker: str, *args: str, env: dict[str, str] | None = None, script: bool = False
) -> tuple[subprocess.Popen[str], int]:
    """A zcio_hypercorn server on a free port, answering; its process and port."""
    port = free_port()
    launcher = [str(SCRIPT)] if script else [sys.executable, "-m", "zcio_hypercorn"]
    command = [*launcher, "hypercorn_app:app", "-k", worker, "--bind", f"127.0.0.1:{port}"]
    command += ["--keep-alive", "2", *args]
    environ = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    environ.update(ZCIO_TEST_ROOT=str(root), PYTHONPATH=str(APPS), **(env or {}))
    proc = subprocess.Popen(command, cwd=APPS, env=environ, stderr=subprocess.PIPE, text=True)
    scheme = "https" if "--certfile" in args else "http"
    wait_for_server(proc, f"{scheme}://127.0.0.1:{port}/stats", name=worker, timeout=60)
    return proc, port


def in_process(worker: str) -> tuple[str, ...]:
    """``--workers 0`` (no spawned worker) for asyncio and uvloop; trio's worker in hypercorn's
    own process has no handler for SIGTERM and was seen slow to stop on SIGINT under load."""
    return () if worker == "trio" else ("--workers", "0")


def interrupt(proc: subprocess.Popen[str]) -> str:
    """Stop a server as Ctrl+C does (hypercorn's trio worker in its own process has no SIGTERM
    handler); its stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:
        return stop_server(proc)


# The copy on asyncio and trio: on uvloop it is the asyncio worker's code with the same copy.
SERVERS = [
    *((worker, "native") for worker in WORKERS),
    ("asyncio", "fallback"),
    ("trio", "fallback"),
]


@pytest.fixture(scope="module", params=SERVERS, ids=[f"{w}-{m}" for w, m in SERVERS])
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    worker, mode = request.param
    if mode == "native":  # hypercorn's default: one spawned worker process
        proc, port = start(root, worker)
    else:  # served in hypercorn's own process where it stops on SIGINT (quicker to start)
        proc, port = start(root, worker, *in_process(worker), env={"ZCIO_DISABLE": "all"})
    running = Server(worker, mode, f"http://127.0.0.1:{port}", port, proc)
    running.pid = int(running.stats()["pid"])
    yield running
    err = interrupt(proc)
    # The startup line says what is offered and how; the closing line, what moved the bytes.
    verdict = "zero-copy: sendfile" if mode == "native" else "zero-copy: none, every byte"
    assert re.search(f"the {worker} worker offers .*zerocopysend.*; {verdict}", err), err
    moved = "sendfile" if mode == "native" else "userspace"
    assert re.search(rf"zcio_hypercorn: pid \d+, bytes moved: .*{moved} [\d,]+ B", err), err
    # The only errors logged: the deliberately shrunk file's aborts.
    for logged in err.split("Error in ASGI Framework")[1:]:
        assert SHRINK_ERROR in logged, logged[-3000:]


def expect_moved(server: Server, before: dict[str, int], size: int) -> None:
    """``size`` more bytes went by sendfile (native), or none did and the copy moved them."""
    after = server.moved()
    sendfile = after.get("sendfile", 0) - before.get("sendfile", 0)
    copied = after.get("userspace", 0) - before.get("userspace", 0)
    if server.native:
        assert sendfile == size
    else:
        assert (sendfile, copied) == (0, size)


RANGE = {"range": "bytes=100-2000099"}
CASES = [  # StaticFiles, FileResponse (whole, a range), zerocopysend (a slice, chunked), pathsend
    ("/files/data.bin", {}, DATA),
    ("/download/data.bin", {}, DATA),
    ("/download/data.bin", RANGE, DATA[100:2000100]),
    ("/zc/data.bin?offset=7&count=3000000", {}, DATA[7:3000007]),
    ("/zc/data.bin?offset=5&chunked=1", {}, b"<" + DATA[5:] + b">"),
    ("/path/data.bin", {}, DATA),
]


def test_bodies_arrive_whole_and_sendfile_moves_them(server: Server) -> None:
    assert server.stats()["extensions"] == EXTENSIONS
    with httpx.Client(timeout=60) as client:
        for path, headers, expected in CASES:
            before = server.moved()
            r = client.get(server.url + path, headers=headers)
            assert r.status_code == (206 if headers else 200), path
            assert sha(r.content) == sha(expected), path
            file_bytes = len(expected) - (2 if "chunked" in path else 0)
            expect_moved(server, before, file_bytes)


def test_keep_alive_after_file_bodies(server: Server) -> None:
    """One connection: a file, a chunked file, HEAD and bodiless answers, then more."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        requests = [
            ("GET", "/zc/data.bin", DATA),
            ("GET", "/zc/small.bin?chunked=1", b"<" + SMALL + b">"),
            ("HEAD", "/zc/data.bin", b""),
            ("HEAD", "/path/data.bin", b""),
            ("GET", "/zc/data.bin?status=204", b""),
            ("GET", "/zc/data.bin?status=304", b""),
            ("GET", "/path/small.bin", SMALL),
            ("GET", "/download/data.bin", DATA),
        ]
        first = None
        for method, path, expected in requests:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
            assert sha(body) == sha(expected), (method, path)
            if method == "HEAD" and "status" not in path:
                assert response.headers["content-length"] == str(len(DATA))
            first = first or conn.sock
            assert conn.sock is first, f"the connection was not kept after {method} {path}"
    finally:
        conn.close()


def wait_for_fds(server: Server, baseline: int) -> int:
    """The server's fds once they are back to ``baseline`` (at most 45 s: closed connections
    linger for hypercorn's keep-alive timeout, 2 s here)."""
    deadline = time.monotonic() + 45
    fds = server.fds()
    while fds > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        fds = server.fds()
    return fds


def test_client_reset_mid_body_gives_the_fds_back(server: Server) -> None:
    if not server.native:
        pytest.skip("native only: the copy's faults are zcio's own tests'")
    baseline = server.fds()
    for route in ["/zc/sparse.bin", "/download/sparse.bin"] * 2:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
            c.sendall(f"GET {route} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = 0
            while got < 2 << 20:
                got += len(c.recv(1 << 20))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert wait_for_fds(server, baseline) <= baseline, server.fd_list()
    assert httpx.get(server.url + "/path/small.bin", timeout=20).content == SMALL


def test_file_that_shrinks_aborts_the_connection(server: Server, root: Path) -> None:
    """The head promised the size before the file shrank: the server must neither hang nor
    send a short body followed by the next response; it aborts the connection."""
    name = f"shrinking-{server.worker}-{server.mode}.bin"
    (root / name).write_bytes(DATA)
    raw = bytearray()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as c:
        # A second request queued behind the first: it must never be answered.
        c.sendall(f"GET /shrink/{name} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 2)
        try:
            while chunk := c.recv(1 << 20):  # ends: the server closes, it does not hang
                raw += chunk
        except ConnectionResetError:
            pass  # the abort is a reset; what arrived before it is in raw
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    assert f"content-length: {len(DATA)}".encode() in head.lower()
    assert len(body) < len(DATA)
    assert body == DATA[: len(body)]
    assert b"HTTP/1.1" not in body
    assert httpx.get(server.url + "/stats", timeout=20).status_code == 200


def test_two_hundred_concurrent_downloads(server: Server) -> None:
    if not server.native:
        pytest.skip("native only: the load is the same on the copy")
    for path in ("/download/data.bin", "/zc/small.bin", "/files/small.bin"):
        # Once each first: the fds the open-file cache keeps are then in the baseline.
        assert httpx.get(server.url + path, timeout=60).status_code == 200
    baseline = server.fds()
    before = server.moved()
    cases = [
        ("/download/data.bin", DATA)
        if i % 40 == 0
        else ("/zc/small.bin", SMALL)
        if i % 2
        else ("/files/small.bin", SMALL)
        for i in range(200)
    ]

    async def fetch_all() -> list[str]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def one(path: str) -> str:
                return sha((await client.get(server.url + path)).content)

            return list(await asyncio.gather(*(one(path) for path, _ in cases)))

    assert asyncio.run(fetch_all()) == [sha(data) for _, data in cases]
    moved = server.moved()
    # Every byte went by zcio, the big bodies by sendfile (small ones may be sent whole with
    # the head by zcio's small-send path), but for StaticFiles' small file, which the
    # open-file cache may hold and send from memory (zcio.asgi.FileCache: max_body).
    total = sum(moved.values()) - sum(before.values())
    by_zcio = sum(len(data) for path, data in cases if not path.startswith("/files/"))
    assert by_zcio <= total <= sum(len(data) for _, data in cases)
    assert moved.get("sendfile", 0) - before.get("sendfile", 0) >= 5 * len(DATA)
    assert wait_for_fds(server, baseline) <= baseline, server.fd_list()


def test_workers_2_through_the_console_script(root: Path) -> None:
    """``zcio-hypercorn --workers 2``: each spawned worker has zcio_hypercorn installed (its
    own startup and closing lines) and sends by sendfile."""
    proc, port = start(root, "asyncio", "--workers", "2", script=True)
    try:
        url = f"http://127.0.0.1:{port}"
        pids = set()
        for _ in range(3):
            stats = httpx.get(url + "/stats", timeout=20).json()
            assert stats["extensions"] == EXTENSIONS
            pids.add(stats["pid"])
            before = stats["bytes"].get("sendfile", 0)
            with httpx.Client(timeout=60) as client:  # one connection: the same worker
                assert sha(client.get(url + "/path/data.bin").content) == sha(DATA)
                after = client.get(url + "/stats").json()
            if after["pid"] == stats["pid"]:
                assert after["bytes"]["sendfile"] - before >= len(DATA)
    finally:
        err = stop_server(proc)
    started = set(re.findall(r"\[(\d+)\] \[INFO\] zcio_hypercorn: the asyncio worker offers", err))
    assert len(started) == 2, err
    assert pids <= {int(pid) for pid in started}
    closing = re.findall(r"zcio_hypercorn: pid (\d+), bytes moved", err)
    assert set(closing) == started, err


@pytest.mark.parametrize("worker", ["asyncio", "trio"])
def test_tls_offers_nothing_and_apps_fall_back(root: Path, tmp_path: Path, worker: str) -> None:
    """Over TLS the bytes must be encrypted in Python: nothing is offered, zcio_starlette sends
    its body messages, hypercorn encrypts them, and zcio moves no byte."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    tls = ("--certfile", str(cert), "--keyfile", str(key), *in_process(worker))
    proc, port = start(root, worker, *tls)
    try:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=context, timeout=60) as c:
            stats = c.get("/stats").json()
            assert stats["extensions"] == []
            r = c.get("/download/data.bin", headers=RANGE)
            assert r.status_code == 206 and sha(r.content) == sha(DATA[100:2000100])
            assert c.get("/stats").json()["bytes"] == stats["bytes"]
    finally:
        interrupt(proc)
