"""zcio_quart on real servers over loopback, against stock Quart in the same process: stock
hypercorn (advertises nothing: Quart's own path runs), zcio_uvicorn (httptools, asyncio) and
zcio_hypercorn (asyncio and uvloop workers) where sendfile moves the bytes, both with
ZCIO_DISABLE=all (the forced fallback: zerocopysend still, copied in user space; uvicorn on
uvloop) and granian (pathsend only). Quart's path on uvloop is tests/test_zcio_quart.py's.

Each server runs tests/apps/quart_app.py, which serves the same files with stock Quart
(``/stock/...``) and with ``zcio_quart.install`` (``/zcio/...``); its /stats endpoint reports
zcio's counters, the ASGI body messages each side sent and the open fds, so the tests prove
which path moved the bytes and that nothing leaked in the server.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import (
    INSIDE,
    SECRET,
    TIMEOUT,
    Swapper,
    free_port,
    make_data,
    sha,
    stop_server,
    wait_for_server,
)

APPS = Path(__file__).parent / "apps"
DATA = make_data(5 * 1024 * 1024 + 13, seed=230)
SMALL = make_data(4096, seed=231)
TEXT = b"".join(b"line %d of a text file\n" % i for i in range(3000))
ZC = "http.response.zerocopysend"
PS = "http.response.pathsend"
BODY = "http.response.body"
RACE_SECONDS = 1.5
RACE_DIR_SERVERS = ("hypercorn-asyncio", "zcio_hypercorn-uvloop")
# What a server may log: the shrunk file's aborts.
EXPECTED_ERRORS = ("promised bytes",)


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: tuple[str, ...]  # {port} is replaced
    message: str | None  # the message zcio_quart's file bodies go by there
    counter: str | None  # the zcio method that moves those bytes (None: not zcio)
    env: dict[str, str] = field(default_factory=dict)


HYPERCORN = ("-m", "hypercorn", "quart_app:app", "--bind", "127.0.0.1:{port}")
UVICORN = ("-m", "uvicorn", "quart_app:app", "--port", "{port}", "--log-level", "warning")
HTTPTOOLS = ("--http", "zcio_uvicorn:HttpToolsProtocol")
SERVERS = [
    ServerKind("hypercorn-asyncio", (*HYPERCORN, "-k", "asyncio"), None, None),
    ServerKind("zcio_uvicorn-httptools-asyncio", (*UVICORN, *HTTPTOOLS, "--loop", "asyncio"),
               ZC, "sendfile"),
    ServerKind("zcio_uvicorn-fallback", (*UVICORN, *HTTPTOOLS, "--loop", "uvloop"),
               ZC, "userspace", {"ZCIO_DISABLE": "all"}),
    *(
        ServerKind(f"zcio_hypercorn-{worker}",
                   ("-m", "zcio_hypercorn", *HYPERCORN[2:], "-k", worker), ZC, "sendfile")
        for worker in ("asyncio", "uvloop")
    ),
    ServerKind("zcio_hypercorn-fallback",
               ("-m", "zcio_hypercorn", *HYPERCORN[2:], "-k", "asyncio"),
               ZC, "userspace", {"ZCIO_DISABLE": "all"}),
    ServerKind("granian", ("-m", "granian", "--interface", "asgi", "--port", "{port}",
                           "--workers", "1", "quart_app:app"), PS, None),
]  # fmt: skip


@dataclass
class Server:
    kind: ServerKind
    url: str
    port: int
    proc: subprocess.Popen[str]
    root: Path

    def stats(self) -> dict[str, Any]:
        """The app's /stats, which closes its connection (hypercorn would hold a connection the
        client closed until its keep-alive timeout: one more open fd per call)."""
        return dict(httpx.get(self.url + "/stats", timeout=TIMEOUT).json())

    def moved(self) -> tuple[dict[str, int], dict[str, int]]:
        """zcio's bytes per method and the body messages per side, so far."""
        stats = self.stats()
        return dict(stats["bytes"]), dict(stats["sent"])

    def fds_back_to(self, baseline: int) -> int:
        """The server's open fds, once back to ``baseline`` or 20 s later (hypercorn closes a
        connection the client left when its 5 s keep-alive timeout expires)."""
        deadline = time.monotonic() + 20
        while (fds := self.stats()["fds"]) > baseline and time.monotonic() < deadline:
            time.sleep(0.2)
        return int(fds)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("quart-live")
    (root / "secret.txt").write_bytes(SECRET)  # outside the folder www: what the races aim at
    (root / "data.bin").write_bytes(DATA)
    (root / "small.bin").write_bytes(SMALL)
    (root / "empty.bin").write_bytes(b"")
    www = root / "www"
    (www / "sub").mkdir(parents=True, exist_ok=True)
    (www / "data.bin").write_bytes(DATA)
    (www / "page.txt").write_bytes(TEXT)
    (www / "small.bin").write_bytes(SMALL)
    (www / "sub" / "ünï cödé.txt").write_bytes(TEXT[:5000])
    with open(root / "sparse.bin", "wb") as f:
        f.truncate(256 << 20)  # a sparse file: large enough to be cut mid-body
    return root


@pytest.fixture(scope="module", params=SERVERS, ids=[s.name for s in SERVERS])
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    kind: ServerKind = request.param
    if importlib.util.find_spec(kind.command[1]) is None:
        pytest.skip(f"{kind.command[1]} is not installed")
    port = free_port()
    command = [sys.executable, *(part.replace("{port}", str(port)) for part in kind.command)]
    env = dict(os.environ, ZCIO_TEST_ROOT=str(root), **kind.env)
    if not kind.env:
        env.pop("ZCIO_DISABLE", None)
    proc = subprocess.Popen(command, cwd=APPS, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/stats", name=kind.name, timeout=30, interval=0.1)
    yield Server(kind, url, port, proc, root)
    err = stop_server(proc)
    for logged in re.split("Exception in ASGI application|Error in ASGI Framework", err)[1:]:
        assert any(expected in logged for expected in EXPECTED_ERRORS), logged[-3000:]


def comparable(r: httpx.Response) -> tuple[int, list[tuple[str, str]], str]:
    ignored = ("date", "server", "expires")
    headers = sorted((k, v) for k, v in r.headers.multi_items() if k not in ignored)
    return r.status_code, headers, sha(r.content)


LATER = "Fri, 01 Jan 2100 00:00:00 GMT"
CASES: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "file?name=data.bin", {}),
    ("GET", "file?name=small.bin&attachment=1", {}),
    ("GET", "file?name=data.bin&conditional=1", {"Range": "bytes=1000-2000000"}),
    ("GET", "file?name=data.bin&conditional=1", {"Range": "bytes=99999999-"}),
    ("GET", "file?name=data.bin&conditional=1", {"If-Modified-Since": LATER}),
    ("GET", "file?name=empty.bin", {}),
    ("GET", "dir/data.bin", {}),
    ("GET", "dir/data.bin", {"Range": "bytes=5000000-"}),
    ("GET", "dir/sub/ünï cödé.txt", {}),
    ("GET", "dir/missing.txt", {}),
    ("GET", "dir/sub", {}),
    ("GET", "static/page.txt", {}),
    ("GET", "static/data.bin", {"Range": "bytes=0-65535"}),
    ("GET", "static/data.bin", {"If-Modified-Since": LATER}),
    ("GET", "static/nothing.txt", {}),
    ("GET", "bytesio", {}),
    ("GET", "bytesio", {"Range": "bytes=5-1000"}),
    ("GET", "replaced?name=data.bin", {}),
    ("HEAD", "file?name=data.bin", {}),
    ("HEAD", "dir/data.bin", {"Range": "bytes=100-199"}),
    ("HEAD", "static/page.txt", {}),
]


def test_every_case_same_as_stock(server: Server) -> None:
    """Over one keep-alive connection per side: every response after a file arrives whole."""
    with httpx.Client(timeout=TIMEOUT) as stock, httpx.Client(timeout=TIMEOUT) as ours:
        for method, path, headers in CASES:
            expected = stock.request(method, f"{server.url}/stock/{path}", headers=headers)
            got = ours.request(method, f"{server.url}/zcio/{path}", headers=headers)
            assert comparable(got) == comparable(expected), (method, path, headers)
        for path in ("static/data.bin", "dir/page.txt", "file?name=data.bin&conditional=1"):
            etag = stock.get(f"{server.url}/stock/{path}").headers["etag"]
            for headers in ({"If-None-Match": etag}, {"If-Match": '"other"'}):
                expected = stock.get(f"{server.url}/stock/{path}", headers=headers)
                got = ours.get(f"{server.url}/zcio/{path}", headers=headers)
                assert comparable(got) == comparable(expected), (path, headers)
                assert got.status_code in (304, 412)


def test_which_path_moved_the_bytes(server: Server) -> None:
    """zcio's counters (the server's sendfile, or its user-space fallback) and the messages."""
    requests = [
        ("file?name=data.bin", {}, DATA),
        ("dir/data.bin", {"Range": "bytes=1000-"}, DATA[1000:]),
        ("static/data.bin", {}, DATA),
    ]
    before, messages = server.moved()
    with httpx.Client(timeout=TIMEOUT) as client:
        for path, headers, data in requests:
            got = client.get(f"{server.url}/zcio/{path}", headers=headers)
            assert sha(got.content) == sha(data), path
    after, messages_after = server.moved()
    total = sum(len(data) for _, _, data in requests)
    delta = {name: after[name] - before.get(name, 0) for name in after}
    kind = server.kind
    assert sum(delta.values()) == (total if kind.counter else 0), delta
    if kind.counter:
        assert delta[kind.counter] == total, delta
    sent = {name: messages_after.get(name, 0) - messages.get(name, 0) for name in messages_after}
    if kind.message == ZC:
        assert sent.get(f"zcio {ZC}") == 3 and not sent.get(f"zcio {BODY}"), sent
    elif kind.message == PS:  # pathsend for the whole file of send_file only
        assert sent.get(f"zcio {PS}") == 1 and sent.get(f"zcio {BODY}"), sent
    else:
        assert sent.get(f"zcio {BODY}") and not sent.get(f"zcio {ZC}"), sent


# --- the symlink-swap race: every server, Quart's path included ------------------------------


def hammer(port: int, path: str, seconds: float) -> dict[str, int]:
    """GET ``path`` over keep-alive connections for ``seconds``: counts of what came back."""
    counts = {"inside": 0, "leaked": 0, "404": 0, "other": 0}
    deadline = time.monotonic() + seconds
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        while time.monotonic() < deadline:
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
            except (ConnectionError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                counts["other"] += 1
                continue
            if SECRET in body or SECRET[:8] in body:
                counts["leaked"] += 1
            elif response.status == 200 and body == INSIDE:
                counts["inside"] += 1
            elif response.status == 404:
                counts["404"] += 1
            else:
                counts["other"] += 1
    finally:
        conn.close()
    return counts


@pytest.mark.parametrize(
    ("route", "intruder"),
    [("dir", "symlink"), ("static", "symlink-dir")],
)
def test_a_symlink_race_never_serves_a_byte_from_outside(
    server: Server, route: str, intruder: str
) -> None:
    """The name (or a folder on the way to it) is swapped atomically for a symlink leading out
    of the folder, thousands of times, while a client asks for it through
    ``send_from_directory`` (or the static folder, which uses it): every answer is the file
    inside or a 404, on Quart's path as on the server's; never a byte from outside. (Stock
    Quart serves the outside file, and cuts responses whose file changed size.)"""
    if intruder == "symlink-dir" and server.kind.name not in RACE_DIR_SERVERS:
        pytest.skip("a folder swapped: on Quart's path and on one zcio server")
    www = server.root / "www"
    name = "swapdir" if intruder == "symlink-dir" else "swap"
    path = f"/zcio/{route}/{name}" + ("/secret.txt" if intruder == "symlink-dir" else "")
    with Swapper(www, name, intruder) as swapper:
        counts = hammer(server.port, path, RACE_SECONDS)
    assert swapper.swaps > 10
    assert counts["leaked"] == 0, counts
    assert counts["inside"] > 0 and counts["404"] > 0, counts
    assert counts["other"] == 0, counts


# --- faults and load: where zcio_uvicorn sends the file ---------------------------------------


def sendfile_only(server: Server) -> None:
    if server.kind.counter != "sendfile":
        pytest.skip("only where sendfile moves the bytes")


def test_client_reset_mid_body_leaks_nothing(server: Server) -> None:
    sendfile_only(server)
    httpx.get(server.url + "/zcio/dir/small.bin", timeout=TIMEOUT)  # the folder, kept open
    baseline = server.stats()["fds"]
    for path in ("/zcio/file?name=sparse.bin", "/zcio/file?name=sparse.bin&conditional=1"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = 0
            while got < 4 << 20:
                got += len(c.recv(1 << 20))
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    assert server.fds_back_to(baseline) <= baseline
    r = httpx.get(server.url + "/zcio/dir/small.bin", timeout=TIMEOUT)
    assert r.content == SMALL


def test_file_that_shrinks_aborts_the_connection(server: Server) -> None:
    """The headers promise the size taken before the file shrank: the server must not hang nor
    send a short body followed by the next response; it closes the connection."""
    sendfile_only(server)
    path = server.root / "shrinking.bin"
    path.write_bytes(DATA)
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as c:
        c.sendall(b"GET /zcio/shrink?name=shrinking.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = bytearray()
        with contextlib.suppress(ConnectionResetError):  # a reset is an abort too
            while chunk := c.recv(1 << 20):  # ends: the server closes, it does not hang
                raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    if head:  # a reset may also discard what the client had not read yet
        assert f"content-length: {len(DATA)}".encode() in head.lower()
    assert len(body) < len(DATA)
    assert body == DATA[: len(body)]
    assert httpx.get(server.url + "/stats", timeout=TIMEOUT).status_code == 200


def test_two_hundred_concurrent_downloads(server: Server) -> None:
    sendfile_only(server)
    if server.kind.name != "zcio_hypercorn-uvloop":
        pytest.skip("once, on zcio_hypercorn's uvloop worker")
    httpx.get(server.url + "/zcio/dir/small.bin", timeout=TIMEOUT)
    baseline = server.stats()["fds"]
    before, _ = server.moved()
    # A mix: every twentieth the 5 MiB file by send_file, the rest 4 KiB from the folder or
    # text from the static folder, a third of them ranges.
    cases: list[tuple[str, dict[str, str], bytes]] = []
    for i in range(200):
        if i % 20 == 0:
            cases.append(("/zcio/file?name=data.bin", {}, DATA))
        elif i % 3 == 0:
            cases.append(("/zcio/static/page.txt", {"Range": "bytes=100-5099"}, TEXT[100:5100]))
        elif i % 2:
            cases.append(("/zcio/dir/small.bin", {}, SMALL))
        else:
            cases.append(("/zcio/static/page.txt", {}, TEXT))

    def download(i: int) -> str:
        path, headers, _ = cases[i]
        with httpx.Client(timeout=60) as client:
            return sha(client.get(server.url + path, headers=headers).content)

    with ThreadPoolExecutor(max_workers=200) as pool:
        digests = list(pool.map(download, range(200)))
    assert digests == [sha(data) for _, _, data in cases]
    after, _ = server.moved()
    assert after["sendfile"] - before["sendfile"] == sum(len(data) for _, _, data in cases)
    assert server.fds_back_to(baseline) <= baseline
