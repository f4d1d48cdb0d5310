"""servestatic certified on zcio_uvicorn: ``ServeStaticASGI`` sends ``zerocopysend`` by itself
when a server offers it, so on zcio_uvicorn its bodies go by ``sendfile(2)`` with no change.

Each server runs tests/apps/servestatic_app.py; its /stats endpoint (the app behind
servestatic) reports zcio's counters and open fds. Whole files, single ranges, the ``.gz``
variant, 304s and HEAD, with hashes, and zcio's counters proving what went by sendfile (and,
on stock uvicorn, that nothing did).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("servestatic") is None, reason="servestatic is not installed"
)

APPS = Path(__file__).parent / "apps"
DATA = make_data(3 * 1024 * 1024 + 5, seed=142)
TEXT = b"".join(b"line %d of a compressible stylesheet\n" % i for i in range(20000))
TEXT_GZ = gzip.compress(TEXT, mtime=0)

UVICORN = ("-m", "uvicorn", "servestatic_app:app", "--log-level", "warning", "--port")
CONFIGS = {
    "zcio_uvicorn-httptools-asyncio": ("--http", "zcio_uvicorn:HttpToolsProtocol"),
    "zcio_uvicorn-h11-uvloop": ("--http", "zcio_uvicorn:H11Protocol", "--loop", "uvloop"),
    "uvicorn": (),
}


@dataclass
class Server:
    name: str
    url: str
    port: int
    zero_copy: bool

    def sendfile_bytes(self) -> int:
        stats = httpx.get(self.url + "/stats", timeout=10).json()
        return int(stats["bytes"].get("sendfile", 0))

    def fds(self) -> int:
        return int(httpx.get(self.url + "/stats", timeout=10).json()["fds"])


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("servestatic")
    (root / "data.bin").write_bytes(DATA)
    (root / "site.css").write_bytes(TEXT)
    (root / "site.css.gz").write_bytes(TEXT_GZ)
    (root / "empty.txt").write_bytes(b"")
    return root


@pytest.fixture(scope="module", params=list(CONFIGS))
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    port = free_port()
    command = [sys.executable, *UVICORN, str(port), *CONFIGS[request.param]]
    env = dict(os.environ, ZCIO_TEST_ROOT=str(root))
    proc = subprocess.Popen(command, cwd=APPS, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/stats", timeout=30, interval=0.1)
    yield Server(request.param, url, port, request.param.startswith("zcio"))
    err = stop_server(proc)
    assert "Traceback" not in err, err[-3000:]


def fetch(
    server: Server, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[httpx.Response, int]:
    """The response, and how many bytes went by sendfile meanwhile."""
    before = server.sendfile_bytes()
    r = httpx.request(method, server.url + path, headers=headers, timeout=30)
    return r, server.sendfile_bytes() - before


def by_sendfile(server: Server, count: int) -> int:
    return count if server.zero_copy else 0


def test_whole_file(server: Server) -> None:
    r, moved = fetch(server, "/static/data.bin")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(DATA))
    assert sha(r.content) == sha(DATA)
    assert moved == by_sendfile(server, len(DATA))


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("bytes=0-0", 0, 1), ("bytes=1000-200999", 1000, 201000), ("bytes=-4096", len(DATA) - 4096,
     len(DATA)), ("bytes=3000000-", 3000000, len(DATA))],
)  # fmt: skip
def test_single_range(server: Server, spec: str, start: int, end: int) -> None:
    r, moved = fetch(server, "/static/data.bin", {"range": spec})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert r.content == DATA[start:end]
    assert moved == by_sendfile(server, end - start)


def test_unsatisfiable_range(server: Server) -> None:
    r, moved = fetch(server, "/static/data.bin", {"range": f"bytes={len(DATA) + 10}-"})
    assert r.status_code == 416
    assert moved == 0


def test_compressed_variant(server: Server) -> None:
    r, moved = fetch(server, "/static/site.css", {"accept-encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["content-length"] == str(len(TEXT_GZ))
    assert sha(r.content) == sha(TEXT)  # httpx decodes: the .gz file itself went out
    assert moved == by_sendfile(server, len(TEXT_GZ))
    plain, moved = fetch(server, "/static/site.css", {"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert sha(plain.content) == sha(TEXT)
    assert moved == by_sendfile(server, len(TEXT))


def test_not_modified(server: Server) -> None:
    first, _ = fetch(server, "/static/data.bin")
    for headers in (
        {"if-none-match": first.headers["etag"]},
        {"if-modified-since": first.headers["last-modified"]},
    ):
        r, moved = fetch(server, "/static/data.bin", headers)
        assert r.status_code == 304
        assert r.content == b""
        assert moved == 0


def test_head_and_empty_file(server: Server) -> None:
    r, moved = fetch(server, "/static/data.bin", method="HEAD")
    assert r.status_code == 200 and r.headers["content-length"] == str(len(DATA))
    assert r.content == b"" and moved == 0
    r, moved = fetch(server, "/static/empty.txt")
    assert r.status_code == 200 and r.content == b"" and moved == 0


def test_app_behind_servestatic(server: Server) -> None:
    r = httpx.get(server.url + "/static/missing.txt", timeout=10)
    assert r.status_code == 404 and r.content == b"not found"


def test_disconnects_leave_no_fd_behind(server: Server) -> None:
    baseline = server.fds()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
            c.sendall(b"GET /static/data.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            c.recv(65536)
    r = httpx.get(server.url + "/static/data.bin", timeout=30)
    assert sha(r.content) == sha(DATA)
    deadline = time.monotonic() + 10
    while server.fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.fds() <= baseline
