"""zcio_starlette.FileResponse on every ASGI server a user may run: correct bytes everywhere,
zero-copy where the server offers it (proved by the message types the app sent)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

APPS = Path(__file__).parent / "apps"
DATA = make_data(5 * 1024 * 1024 + 13, seed=71)


@dataclass(frozen=True)
class ServerKind:
    name: str
    command: tuple[str, ...]  # {port} is replaced
    zero_copy: str | None  # the message the server lets the app use for whole files
    #: A known server bug that can cut a large zero-copy body short, if any.
    known_bug: str | None = None


APP = "starlette_app:app"
UVICORN = ("-m", "uvicorn", APP, "--port", "{port}")
SERVERS = [
    ServerKind("uvicorn", UVICORN, None),
    ServerKind(
        "uvicorn+zcio",
        (*UVICORN, "--http", "zcio_uvicorn:HttpToolsProtocol"),
        "http.response.zerocopysend",
    ),
    ServerKind(
        "uvicorn+zcio+uvloop+h11",
        (*UVICORN, "--http", "zcio_uvicorn:H11Protocol", "--loop", "uvloop"),
        "http.response.zerocopysend",
    ),
    ServerKind(
        "anycorn-trio",
        ("-m", "anycorn", "-b", "127.0.0.1:{port}", "-k", "trio", "starlette_app:app"),
        "http.response.zerocopysend",
    ),
    ServerKind(
        "anycorn-asyncio",
        ("-m", "anycorn", "-b", "127.0.0.1:{port}", "-k", "asyncio", "starlette_app:app"),
        "http.response.zerocopysend",
        # anycorn's asyncio sendfile waits on a socket its own transport owns; once the
        # socket buffer fills, asyncio refuses ("used by transport") and the body is cut.
        # A bare pathsend app without zcio or Starlette shows the same.
        known_bug="anycorn -k asyncio cuts zero-copy bodies short when the socket fills",
    ),
    ServerKind(
        "granian",
        ("-m", "granian", "--interface", "asgi", "--port", "{port}", "--workers", "1", APP),
        "http.response.pathsend",
    ),
    ServerKind(
        "hypercorn", ("-m", "hypercorn", "-b", "127.0.0.1:{port}", "starlette_app:app"), None
    ),
]


@dataclass
class Server:
    kind: ServerKind
    url: str
    proc: subprocess.Popen[str]


def module_available(command: tuple[str, ...]) -> bool:
    import importlib.util

    return importlib.util.find_spec(command[1]) is not None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("www")
    (root / "data.bin").write_bytes(DATA)
    return root


@pytest.fixture(scope="module", params=SERVERS, ids=[s.name for s in SERVERS])
def server(request: pytest.FixtureRequest, root: Path) -> Iterator[Server]:
    kind: ServerKind = request.param
    if not module_available(kind.command):
        pytest.skip(f"{kind.command[1]} is not installed")
    port = free_port()
    command = [sys.executable, *(part.replace("{port}", str(port)) for part in kind.command)]
    env = dict(os.environ, ZCIO_TEST_ROOT=str(root))
    proc = subprocess.Popen(command, cwd=APPS, env=env, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/sent", name=kind.name)
    yield Server(kind, url, proc)
    stop_server(proc)


def messages(server: Server) -> dict[str, int]:
    return dict(httpx.get(server.url + "/sent", timeout=10).json()["messages"])


@pytest.mark.parametrize("path", ["/download/data.bin", "/files/data.bin"])
def test_whole_file(server: Server, path: str) -> None:
    if server.kind.known_bug:
        pytest.xfail(server.kind.known_bug)  # not run: its outcome depends on timing
    before = messages(server)
    r = httpx.get(server.url + path, timeout=30)
    assert r.status_code == 200
    assert sha(r.content) == sha(DATA)
    after = messages(server)
    used = {k for k in after if after[k] != before.get(k, 0)}
    if server.kind.zero_copy is None:
        assert used == {"http.response.body"}
    elif path.startswith("/files") and server.kind.zero_copy == "http.response.pathsend":
        # StaticFiles never hands a server a path to open again (docs/security.md): the
        # file it opened beneath its folder is read by Starlette.
        assert used == {"http.response.body"}
    else:
        assert server.kind.zero_copy in used


def test_single_range(server: Server) -> None:
    r = httpx.get(
        server.url + "/download/data.bin", headers={"Range": "bytes=1000-1999999"}, timeout=30
    )
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 1000-1999999/{len(DATA)}"
    assert r.content == DATA[1000:2000000]


def test_multipart_ranges(server: Server) -> None:
    r = httpx.get(
        server.url + "/download/data.bin", headers={"Range": "bytes=0-99,5000-5999"}, timeout=30
    )
    assert r.status_code == 206
    body = r.content
    assert DATA[0:100] in body
    assert DATA[5000:6000] in body
    boundary = r.headers["content-type"].split("boundary=")[1]
    assert body.count(b"--" + boundary.encode()) == 3


def test_head_and_416(server: Server) -> None:
    head = httpx.head(server.url + "/download/data.bin", timeout=10)
    assert head.headers["content-length"] == str(len(DATA))
    assert head.content == b""
    r = httpx.get(
        server.url + "/download/data.bin",
        headers={"Range": f"bytes={len(DATA) + 10}-"},
        timeout=10,
    )
    assert r.status_code == 416


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_range(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "part"
    subprocess.run(
        ["curl", "-sS", "-r", "100-199", "-o", str(out), server.url + "/files/data.bin"],
        check=True,
        timeout=30,
    )
    assert out.read_bytes() == DATA[100:200]
