"""zcio_uvicorn on real uvicorn servers over loopback, with real clients (httpx, curl, sockets).

Each server is a subprocess running tests/apps/uvicorn_app.py; its /stats endpoint reports
zcio's counters and its open fds, so the tests can prove the bytes went by sendfile and that
nothing leaked in the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

APPS = Path(__file__).parent / "apps"
DATA = make_data(3 * 1024 * 1024 + 7, seed=61)


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen[str]
    error_log: Path
    # What uvicorn logged at ERROR, one record each (see uvicorn_app.py); read by stop().
    errors: list[dict[str, Any]] = field(default_factory=list)

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/stats", timeout=10).json())


def start(*args: str, scheme: str = "http", verify: Any = False) -> Server:
    port = free_port()
    error_log = Path(tempfile.mkdtemp(prefix="zcio-uvicorn-")) / "errors.jsonl"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "uvicorn_app:app", "--port", str(port)),
            *("--log-level", "warning", "--no-access-log", *args),
        ],
        cwd=APPS,
        env=dict(os.environ, ZCIO_TEST_ERROR_LOG=str(error_log)),
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"{scheme}://127.0.0.1:{port}"
    wait_for_server(proc, url + "/text", timeout=15, verify=verify)
    return Server(url, port, proc, error_log)


def stop(server: Server) -> str:
    err = stop_server(server.proc)
    if server.error_log.exists():
        lines = server.error_log.read_text().splitlines()
        server.errors = [json.loads(line) for line in lines]
    shutil.rmtree(server.error_log.parent, ignore_errors=True)
    return err


CONFIGS = [
    pytest.param(("zcio_uvicorn:H11Protocol", "asyncio"), id="h11-asyncio"),
    pytest.param(("zcio_uvicorn:HttpToolsProtocol", "asyncio"), id="httptools-asyncio"),
    pytest.param(("zcio_uvicorn:H11Protocol", "uvloop"), id="h11-uvloop"),
    pytest.param(("zcio_uvicorn:HttpToolsProtocol", "uvloop"), id="httptools-uvloop"),
]


@pytest.fixture(scope="module", params=CONFIGS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    http, loop = request.param
    srv = start("--http", http, "--loop", loop)
    yield srv
    err = stop(srv)
    # The only errors: uvicorn logging the deliberately truncated file, one per abort. Read from
    # the app's structured log, not from traceback text (whose layout varies by Python version).
    for error in srv.errors:
        assert error["message"] == "Exception in ASGI application", (srv.errors, err)
        assert error["exception"] == "RuntimeError", (srv.errors, err)
        assert error["text"].endswith("promised bytes; connection aborted"), (srv.errors, err)
    assert err.count("Exception in ASGI application") == len(srv.errors), err


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("served")
    data = root / "data.bin"
    data.write_bytes(DATA)
    big = root / "sparse-1GiB.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: a gigabyte of zeros, on disk nearly nothing
    return {"data": data, "big": big}


def sendfile_bytes(server: Server) -> int:
    return int(server.stats()["bytes"].get("sendfile", 0))


@pytest.mark.parametrize("how", ["zerocopy", "pathsend", "chunked", "halves"])
def test_file_bodies_go_by_sendfile(server: Server, files: dict[str, Path], how: str) -> None:
    before = sendfile_bytes(server)
    r = httpx.get(server.url + "/file", params={"path": str(files["data"]), "how": how}, timeout=20)
    assert r.status_code == 200
    assert sha(r.content) == sha(DATA)
    if how == "chunked":
        assert r.headers["transfer-encoding"] == "chunked"
    else:
        assert r.headers["content-length"] == str(len(DATA))
    assert sendfile_bytes(server) - before == len(DATA)


def test_zerocopysend_without_offset_follows_the_position(
    server: Server, files: dict[str, Path]
) -> None:
    """No offset: from the file object's position (a buffered reader's, not its fd's), which
    then moves past the bytes sent; an explicit offset leaves the position alone."""
    before = sendfile_bytes(server)
    r = httpx.get(
        server.url + "/file", params={"path": str(files["data"]), "how": "position"}, timeout=20
    )
    assert r.status_code == 200
    assert r.content == DATA[100:1100] + DATA[:100] + DATA[1100:]
    assert sendfile_bytes(server) - before == len(DATA) - 50  # all but the body message


def test_extensions_advertised(server: Server) -> None:
    assert httpx.get(server.url + "/ext").json() == [
        "http.response.pathsend",
        "http.response.zerocopysend",
    ]


def test_head_sends_headers_only(server: Server, files: dict[str, Path]) -> None:
    r = httpx.head(server.url + "/file", params={"path": str(files["data"])})
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(DATA))
    assert r.content == b""


def test_keep_alive_mixing_file_and_ordinary_responses(
    server: Server, files: dict[str, Path]
) -> None:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        for _ in range(3):
            r = client.get("/file", params={"path": str(files["data"]), "how": "halves"})
            assert sha(r.content) == sha(DATA)
            assert client.get("/text").content == b"hello, ordinary response"
        # One connection all along.
        assert client.get("/text").extensions["network_stream"] is not None


def test_pipelined_requests(server: Server, files: dict[str, Path]) -> None:
    target = f"/file?path={files['data']}".encode()
    requests = b"".join(
        b"GET " + t + b" HTTP/1.1\r\nHost: x\r\n\r\n" for t in (target, b"/text", target)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
        c.sendall(requests + b"GET /text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = bytearray()
        while chunk := c.recv(1 << 20):
            raw += chunk
    bodies = []
    rest = bytes(raw)
    while rest:
        head, _, rest = rest.partition(b"\r\n\r\n")
        length = int(
            next(
                line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            ).split(b":")[1]
        )
        bodies.append(rest[:length])
        rest = rest[length:]
    assert [sha(b) for b in bodies] == [
        sha(DATA),
        sha(b"hello, ordinary response"),
        sha(DATA),
        sha(b"hello, ordinary response"),
    ]


def test_client_disconnect_mid_file_stops_and_leaks_nothing(
    server: Server, files: dict[str, Path]
) -> None:
    baseline = server.stats()["fds"]
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
            c.sendall(f"GET /file?path={files['big']} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = 0
            while got < 4 << 20:
                got += len(c.recv(1 << 20))
    deadline = time.monotonic() + 10
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline
    assert httpx.get(server.url + "/text").status_code == 200


def test_truncated_file_aborts_the_connection(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(DATA)
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as c:
        c.sendall(f"GET /truncate?path={path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        raw = bytearray()
        while chunk := c.recv(1 << 20):  # ends: the server closes, it does not hang
            raw += chunk
    head, _, body = bytes(raw).partition(b"\r\n\r\n")
    assert f"content-length: {len(DATA)}".encode() in head.lower()
    assert len(body) < len(DATA)
    assert body == DATA[: len(body)]
    assert httpx.get(server.url + "/text").status_code == 200


def test_one_gibibyte_sparse_file(server: Server, files: dict[str, Path]) -> None:
    before = sendfile_bytes(server)
    digest = hashlib.sha256()
    size = 0
    with httpx.stream(
        "GET", server.url + "/file", params={"path": str(files["big"])}, timeout=60
    ) as r:
        for chunk in r.iter_raw(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    zeros = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(1024):
        zeros.update(block)
    assert size == 1 << 30
    assert digest.hexdigest() == zeros.hexdigest()
    assert sendfile_bytes(server) - before == 1 << 30


def test_two_hundred_concurrent_downloads(server: Server, files: dict[str, Path]) -> None:
    baseline = server.stats()["fds"]
    before = sendfile_bytes(server)

    def download(_: int) -> str:
        with httpx.Client(timeout=30) as client:
            r = client.get(server.url + "/file", params={"path": str(files["data"])})
            return sha(r.content)

    with ThreadPoolExecutor(max_workers=200) as pool:
        digests = list(pool.map(download, range(200)))
    assert digests == [sha(DATA)] * 200
    assert sendfile_bytes(server) - before == 200 * len(DATA)
    deadline = time.monotonic() + 10
    while server.stats()["fds"] > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["fds"] <= baseline


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl(server: Server, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    subprocess.run(
        ["curl", "-sS", "-o", str(out), f"{server.url}/file?path={files['data']}&how=pathsend"],
        check=True,
        timeout=30,
    )
    assert sha(out.read_bytes()) == sha(DATA)


def test_tls_connections_do_not_advertise(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    key, chain = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(key)
    cert.cert_chain_pems[0].write_to_path(chain)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    verify = ssl.create_default_context(cafile=str(ca_file))
    tls_args = ("--ssl-keyfile", str(key), "--ssl-certfile", str(chain))
    http = ("--http", "zcio_uvicorn:HttpToolsProtocol")
    srv = start(*http, *tls_args, scheme="https", verify=verify)
    try:
        assert httpx.get(srv.url + "/ext", verify=verify).json() == []
    finally:
        stop(srv)


def test_workers(files: dict[str, Path]) -> None:
    srv = start("--http", "zcio_uvicorn:HttpToolsProtocol", "--workers", "2")
    try:
        for _ in range(4):
            r = httpx.get(srv.url + "/file", params={"path": str(files["data"])}, timeout=20)
            assert sha(r.content) == sha(DATA)
        assert httpx.get(srv.url + "/ext").json() == [
            "http.response.pathsend",
            "http.response.zerocopysend",
        ]
    finally:
        stop(srv)


@pytest.mark.anyio
async def test_pathsend_open_cancelled_closes_the_file(
    anyio_backend: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pathsend cancelled while a worker thread opens its path: the cancellation is raised
    at once, and the file the thread opens afterwards is closed, not left to the GC."""
    import asyncio
    import threading

    from zcio_uvicorn import _zerocopy

    if anyio_backend[0] != "asyncio":
        pytest.skip("uvicorn runs on asyncio loops")
    path = tmp_path / "f.bin"
    path.write_bytes(DATA[:100])
    started, release = threading.Event(), threading.Event()
    opened: list[Any] = []
    real = _zerocopy._open_learning

    def slow(p: Any) -> Any:
        started.set()
        release.wait(10)
        file = real(p)
        opened.append(file)
        return file

    monkeypatch.setattr(_zerocopy, "_open_learning", slow)
    task = asyncio.ensure_future(_zerocopy._open_in_thread(str(path)))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    for _ in range(500):  # the thread finishes, then the loop runs the closing callback
        if opened and opened[0].closed:
            break
        await asyncio.sleep(0.01)
    assert len(opened) == 1 and opened[0].closed


# --- The uvicorn versions zcio_uvicorn accepts ------------------------------------------------

_TRY_IMPORT = """
import json, sys
import uvicorn

results = {}
for version in json.loads(sys.argv[1]):
    uvicorn.__version__ = version
    for name in [m for m in sys.modules if m.startswith("zcio_uvicorn")]:
        del sys.modules[name]
    try:
        import zcio_uvicorn
    except ImportError as exc:
        results[version] = [type(exc).__name__, str(exc), "zcio_uvicorn._protocols" in sys.modules]
    else:
        results[version] = ["imported", "", "zcio_uvicorn._protocols" in sys.modules]
print(json.dumps(results))
"""


def test_an_unsupported_uvicorn_is_refused_at_import() -> None:
    """Outside the tested range, importing zcio_uvicorn raises UnsupportedUvicorn (an
    ImportError) naming the range, before any of uvicorn's classes is subclassed."""
    from zcio_uvicorn import SUPPORTED

    (lo_major, lo_minor, lo_patch), (hi_major, hi_minor, _) = SUPPORTED
    low = f"{lo_major}.{lo_minor}.{lo_patch}"
    last = f"{hi_major}.{hi_minor - 1}.99"
    below = f"{lo_major}.{lo_minor - 1}.99" if lo_patch == 0 else f"{lo_major}.{lo_minor}.0"
    above = f"{hi_major}.{hi_minor}.0"
    versions = [low, last, below, above, f"{hi_major}.{hi_minor}.0rc1", "1.0.0", "unknown"]
    proc = subprocess.run(
        [sys.executable, "-c", _TRY_IMPORT, json.dumps(versions)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results[low] == ["imported", "", True]
    assert results[last] == ["imported", "", True]
    wanted = f"uvicorn>={lo_major}.{lo_minor}" + (f".{lo_patch}" if lo_patch else "")
    for version in versions[2:]:
        kind, message, subclassed = results[version]
        assert kind == "UnsupportedUvicorn", (version, results[version])
        assert f"{wanted},<{hi_major}.{hi_minor}" in message
        assert f"uvicorn {version} is installed" in message
        assert not subclassed


def test_the_uvicorn_extra_declares_the_supported_range() -> None:
    import tomllib

    from zcio_uvicorn._supported import describe

    pyproject = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["uvicorn"]
    assert describe() in [r.replace(" ", "") for r in extra]
