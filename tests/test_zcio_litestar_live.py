"""zcio_litestar on real servers over loopback: zcio_uvicorn (zerocopysend), stock uvicorn
(nothing advertised) and granian (pathsend only), against stock Litestar in the same process.

Each server runs tests/apps/litestar_app.py, which serves the same files with stock Litestar
(``/stock/...``) and with zcio_litestar (``/zcio/...``); its /stats endpoint reports zcio's
counters, the ASGI body messages each side sent and the open fds, so the tests prove which path
moved the bytes and that nothing leaked in the server.
"""

from __future__ import annotations

import importlib.util
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

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

APPS = Path(__file__).parent / "apps"
DATA = make_data(5 * 1024 * 1024 + 13, seed=140)
SMALL = make_data(4096, seed=141)
TEXT = b"".join(b"line %d of a text file\n" % i for i in range(3000))
ZC = "http.response.zerocopysend"
PS = "http.response.pathsend"
SHRINK_ERROR = "promised bytes; connection aborted"


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: tuple[str, ...]  # {port} is replaced
    message: str | None  # the message zcio_litestar's bodies go by there
    sendfile: bool  # whether zcio's counters see those bodies (zcio_uvicorn sends them)


UVICORN = ("-m", "uvicorn", "litestar_app:app", "--port", "{port}", "--log-level", "warning")
SERVERS = [
    ServerKind("zcio_uvicorn-httptools-asyncio",
               (*UVICORN, "--http", "zcio_uvicorn:HttpToolsProtocol", "--loop", "asyncio"),
               ZC, True),
    ServerKind("zcio_uvicorn-h11-uvloop",
               (*UVICORN, "--http", "zcio_uvicorn:H11Protocol", "--loop", "uvloop"), ZC, True),
    ServerKind("uvicorn", UVICORN, None, False),
    ServerKind("granian", ("-m", "granian", "--interface", "asgi", "--port", "{port}",
                           "--workers", "1", "litestar_app:app"), PS, False),
]  # fmt: skip


@dataclass
class Server:
    kind: ServerKind
    url: str
    port: int
    proc: subprocess.Popen[str]

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/stats", timeout=10).json())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("litestar-live")
    (root / "data.bin").write_bytes(DATA)
    (root / "small.bin").write_bytes(SMALL)
    (root / "empty.bin").write_bytes(b"")
    (root / "naïve résumé.txt").write_bytes(TEXT)
    (root / "dir").mkdir()
    www = root / "www"
    (www / "sub").mkdir(parents=True)
    (www / "data.bin").write_bytes(DATA)
    (www / "page.txt").write_bytes(TEXT)
    (www / "sub" / "ünï cödé.txt").write_bytes(TEXT[:5000])
    big = root / "sparse.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)  # a sparse file: large enough to be cut mid-body
    return root


@pytest.fixture(scope="module", params=SERVERS, ids=[s.name for s in SERVERS])
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    kind: ServerKind = request.param
    if importlib.util.find_spec(kind.command[1]) is None:
        pytest.skip(f"{kind.command[1]} is not installed")
    port = free_port()
    command = [sys.executable, *(part.replace("{port}", str(port)) for part in kind.command)]
    env = dict(os.environ, ZCIO_TEST_ROOT=str(root))
    proc = subprocess.Popen(command, cwd=APPS, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/stats", name=kind.name, timeout=30, interval=0.1)
    yield Server(kind, url, port, proc)
    err = stop_server(proc)
    # The only errors logged: the deliberately shrunk file's aborts (each logged error names
    # it; how many lines a traceback shows differs between Python versions).
    for logged in err.split("Exception in ASGI application")[1:]:
        assert SHRINK_ERROR in logged, logged[-3000:]


def comparable(r: httpx.Response) -> tuple[int, list[tuple[str, str]], str]:
    headers = sorted((k, v) for k, v in r.headers.multi_items() if k not in ("date", "server"))
    return r.status_code, headers, sha(r.content)


def sent(server: Server) -> tuple[int, dict[str, int]]:
    stats = server.stats()
    return int(stats["bytes"].get("sendfile", 0)), dict(stats["sent"])


FILES = [
    {"name": "data.bin"},
    {"name": "small.bin"},
    {"name": "data.bin", "filename": "report.pdf"},
    {"name": "naïve résumé.txt", "filename": "naïve résumé.txt", "inline": "1"},
]


@pytest.mark.parametrize("params", FILES, ids=["data", "small", "filename", "non-ascii-inline"])
def test_file_same_as_stock(server: Server, params: dict[str, str]) -> None:
    size = len({"data.bin": DATA, "small.bin": SMALL}.get(params["name"], TEXT))
    expected = httpx.get(server.url + "/stock/file", params=params, timeout=30)
    before, messages = sent(server)
    got = httpx.get(server.url + "/zcio/file", params=params, timeout=30)
    after, messages_after = sent(server)
    assert comparable(got) == comparable(expected)
    assert got.status_code == 200 and len(got.content) == size
    # Which path moved the bytes: zcio's counters (zcio_uvicorn's sendfile), and the message.
    assert after - before == (size if server.kind.sendfile else 0)
    kind = server.kind.message or "http.response.body"
    assert messages_after.get(f"zcio {kind}", 0) > messages.get(f"zcio {kind}", 0)
    if server.kind.message:
        assert messages_after.get("zcio http.response.body", 0) == messages.get(
            "zcio http.response.body", 0
        )


def test_stock_litestar_moves_no_byte_by_sendfile(server: Server) -> None:
    before, _ = sent(server)
    r = httpx.get(server.url + "/stock/file", params={"name": "data.bin"}, timeout=30)
    assert sha(r.content) == sha(DATA)
    assert sent(server)[0] == before


@pytest.mark.parametrize(
    "path",
    [
        "static/data.bin",
        "static/page.txt",
        "static/sub/ünï cödé.txt",
        "static/sub",  # a directory: 404
        "static/missing.txt",
        "file?name=missing.bin",  # 500, as Litestar
        "file?name=dir",
        "file?name=empty.bin",
    ],
)
def test_routes_same_as_stock(server: Server, path: str) -> None:
    for method in ("GET", "HEAD"):
        expected = httpx.request(method, f"{server.url}/stock/{path}", timeout=30)
        got = httpx.request(method, f"{server.url}/zcio/{path}", timeout=30)
        assert comparable(got) == comparable(expected)


def test_static_bodies_go_by_the_server(server: Server) -> None:
    before, _ = sent(server)
    r = httpx.get(server.url + "/zcio/static/data.bin", timeout=30)
    assert sha(r.content) == sha(DATA)
    assert sent(server)[0] - before == (len(DATA) if server.kind.sendfile else 0)


# --- faults and load: zcio_uvicorn only --------------------------------------------------------


def zcio_only(server: Server) -> None:
    if not server.kind.sendfile:
        pytest.skip("zcio_uvicorn only")


def test_client_disconnect_mid_body_leaks_nothing(server: Server) -> None:
    zcio_only(server)
    baseline = server.stats()["fds"]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
            c.sendall(b"GET /zcio/file?name=sparse.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            got = 0
            while got < 4 << 20:
                got += len(c.recv(1 << 20))
    deadline = time.monotonic() + 10
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline
    r = httpx.get(server.url + "/zcio/file", params={"name": "small.bin"}, timeout=10)
    assert r.content == SMALL


def test_file_that_shrinks_aborts_the_connection(server: Server, root: Path) -> None:
    """The headers promise the size taken before the file shrank: the server must not hang
    nor send a short body followed by the next response; it closes the connection."""
    zcio_only(server)
    path = root / "shrinking.bin"
    path.write_bytes(DATA)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
        c.sendall(b"GET /zcio/shrink?name=shrinking.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = bytearray()
        while chunk := c.recv(1 << 20):  # ends: the server closes, it does not hang
            raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    assert f"content-length: {len(DATA)}".encode() in head.lower()
    assert len(body) < len(DATA)
    assert body == DATA[: len(body)]
    assert httpx.get(server.url + "/stats", timeout=10).status_code == 200


def test_two_hundred_concurrent_downloads(server: Server) -> None:
    zcio_only(server)
    if server.kind is not SERVERS[0]:
        pytest.skip("once, on the first zcio_uvicorn server")
    baseline = server.stats()["fds"]
    before, _ = sent(server)

    # A mix: every tenth the 5 MiB file by File, the rest 4 KiB by File or text by the router.
    cases = [
        ("/zcio/file", {"name": "data.bin"}, DATA)
        if i % 10 == 0
        else ("/zcio/file", {"name": "small.bin"}, SMALL)
        if i % 2
        else ("/zcio/static/page.txt", {}, TEXT)
        for i in range(200)
    ]

    def download(i: int) -> str:
        path, params, _ = cases[i]
        with httpx.Client(timeout=60) as client:
            return sha(client.get(server.url + path, params=params).content)

    with ThreadPoolExecutor(max_workers=200) as pool:
        digests = list(pool.map(download, range(200)))
    assert digests == [sha(data) for _, _, data in cases]
    assert sent(server)[0] - before == sum(len(data) for _, _, data in cases)
    deadline = time.monotonic() + 10
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline
