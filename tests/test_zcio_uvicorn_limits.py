"""zcio_uvicorn's limits on what one client may send, against real uvicorn servers on loopback,
and the lines it logs (what it offers at the first connection, what it moved at the end).

Each server is a subprocess (tests/apps/uvicorn_app.py) configured through the
``ZCIO_UVICORN_*`` variables; its stderr is read in a thread. Every wait is bounded, and no
assertion is on a duration: "served promptly" means served at all within a generous timeout.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import zcio_uvicorn
from _support import make_data, sha

APPS = Path(__file__).parent / "apps"
TIMEOUT = 20.0
PROTOCOLS = ["H11Protocol", "HttpToolsProtocol"]
MiB = 1 << 20
CLOSE = b"Connection: close\r\n\r\n"


class Server:
    """``uvicorn uvicorn_app:app --http zcio_uvicorn:PROTOCOL`` with ``env``, stderr kept."""

    def __init__(self, protocol: str, env: Mapping[str, str] = {}, loop: str = "asyncio") -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ZCIO_UVICORN_", "ZCIO_DISABLE"))
        }
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "uvicorn_app:app", "--port", str(self.port)),
                *("--http", f"zcio_uvicorn:{protocol}", "--loop", loop, "--no-access-log"),
                *("--backlog", "4096"),
            ],
            cwd=APPS,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**base, **env},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()
        deadline = time.monotonic() + 15
        while "Application startup complete" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.output()}")
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        with self.proc.stderr:
            for line in self.proc.stderr:
                self.lines.put(line)

    def output(self) -> str:
        while True:
            try:
                self.log.append(self.lines.get_nowait())
            except queue.Empty:
                return "".join(self.log)

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def get(self, path: str = "/text", timeout: float = TIMEOUT) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._pump.join(TIMEOUT)
        return self.output()


@contextlib.contextmanager
def serving(protocol: str, env: Mapping[str, str] = {}, loop: str = "asyncio") -> Iterator[Server]:
    server = Server(protocol, env, loop)
    try:
        yield server
    finally:
        server.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    data = bytearray()
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return bytes(data)


def flood(sock: socket.socket, head: bytes, filler: bytes, total: int) -> int:
    """Send ``head`` then ``filler`` until ``total`` bytes or the server closes; bytes sent."""
    sent = 0
    try:
        sock.sendall(head)
        while sent < total:
            sock.sendall(filler)
            sent += len(filler)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


# -- the limits, one by one --------------------------------------------------------------------


@pytest.fixture(scope="module", params=PROTOCOLS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    with serving(request.param, {"ZCIO_UVICORN_HEAD_TIMEOUT": "2"}) as srv:
        yield srv


def test_request_target_over_the_limit_is_414(server: Server) -> None:
    ok = b"/" + b"a" * 8191  # exactly 8192 bytes: allowed (the app answers 404)
    for target, status in ((ok, b" 404 "), (ok + b"a", b" 414 ")):
        with connect(server) as c:
            c.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert answer(c).split(b"\r\n")[0].startswith(b"HTTP/1.1" + status)


def test_too_many_or_too_large_header_fields_are_431(server: Server) -> None:
    many = b"".join(b"x-h%d: v\r\n" % i for i in range(100))  # with Host: 101 fields
    large = b"cookie: " + b"c" * 33000 + b"\r\n"
    for fields in (many, large):
        with connect(server) as c:
            c.sendall(b"GET /text HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
            reply = answer(c)
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:100]
        assert b"connection: close" in reply.lower()
    assert server.get().status_code == 200


def test_endless_header_is_cut_early(server: Server) -> None:
    """One header value that never ends: the server answers 431 and closes after about the
    head's budget (41 KiB), long before the 64 MiB this client would send."""
    with connect(server) as c:
        sent = flood(c, b"GET /text HTTP/1.1\r\nHost: x\r\nx-long: ", b"v" * 65536, 64 * MiB)
        reply = answer(c)
    assert sent < 16 * MiB
    assert reply.startswith(b"HTTP/1.1 431 ") or reply == b""  # a reset may beat the answer


def test_slow_and_silent_heads_are_closed_after_the_timeout(server: Server) -> None:
    """A head that is not complete in 2 s: 408 and closed; a connection that sends nothing:
    closed silently. Meanwhile an ordinary client is served."""
    partial = [connect(server) for _ in range(20)]
    silent = [connect(server) for _ in range(20)]
    for c in partial:
        c.sendall(b"GET /text HTTP/1.1\r\nHo")
    assert server.get().status_code == 200
    for c in partial:
        c.sendall(b"s")  # one byte now and then does not extend the deadline
    replies = [answer(c) for c in partial]
    eofs = [answer(c) for c in silent]
    for c in partial + silent:
        c.close()
    assert all(r.startswith(b"HTTP/1.1 408 ") for r in replies), replies[:3]
    assert eofs == [b""] * len(silent)
    assert server.get().status_code == 200


def test_keep_alive_connection_gets_a_fresh_clock_per_request(server: Server) -> None:
    """The head timeout counts from when the server is ready for the next request."""
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(3):
            assert client.get("/text").status_code == 200
            time.sleep(1.2)  # within the keep-alive timeout (5 s), not within 2 s in total


# -- floods, measured from the outside ---------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_header_flood_keeps_the_server_small(protocol: str) -> None:
    """32 connections at once each try to send 16 MiB of header lines (512 MiB in all): the
    server's memory stays within a few MiB of where it started, and it serves throughout."""
    with serving(protocol) as srv:
        assert srv.get().status_code == 200
        before = srv.rss()
        peak = before

        def one(i: int) -> int:
            with connect(srv) as c:
                head = b"GET /text HTTP/1.1\r\nHost: x\r\n"
                filler = b"".join(b"x-%d-%d: %s\r\n" % (i, n, b"v" * 200) for n in range(256))
                return flood(c, head, filler, 16 * MiB)

        with ThreadPoolExecutor(32) as pool:
            sent = list(pool.map(one, range(32)))
            peak = max(peak, srv.rss())
        assert srv.get().status_code == 200
        after = srv.rss()
    assert max(sent) < 16 * MiB  # every flood was cut off
    assert max(peak, after) - before < 32 * MiB, (before, peak, after)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_request_line_flood_does_not_starve_others(protocol: str) -> None:
    """Four clients keep sending 8 MiB request lines; an ordinary client's requests are all
    served meanwhile (each within the generous timeout)."""
    with serving(protocol) as srv:
        stop = threading.Event()

        def attacker() -> int:
            rounds = 0
            while not stop.is_set() and rounds < 200:
                with connect(srv) as c:
                    flood(c, b"GET /", b"a" * 65536, 8 * MiB)
                    answer(c)
                rounds += 1
            return rounds

        with ThreadPoolExecutor(4) as pool:
            attacks = [pool.submit(attacker) for _ in range(4)]
            try:
                statuses = [srv.get().status_code for _ in range(20)]
            finally:
                stop.set()
            rounds = [a.result(TIMEOUT) for a in attacks]
        assert statuses == [200] * 20
        assert min(rounds) >= 1
        assert "414" in srv.stop()


def test_connection_flood_against_the_cap() -> None:
    """With a cap of 50, 300 idle connections (a slowloris crowd, half of them mid-head) never
    keep an ordinary client out: each new connection closes the one that has waited longest
    (503 if it had sent part of a head). The server's fds come back to where they were."""
    with serving("HttpToolsProtocol", {"ZCIO_UVICORN_MAX_CONNECTIONS": "50"}) as srv:
        assert srv.get().status_code == 200
        baseline = srv.fds()
        crowd = [connect(srv) for _ in range(300)]
        for c in crowd[::2]:
            with contextlib.suppress(OSError):  # it may have been closed already
                c.sendall(b"GET / HTTP/1.1\r\n")
        assert [srv.get().status_code for _ in range(10)] == [200] * 10
        closed, refused = 0, 0
        for c in crowd:
            c.settimeout(0.2)
            try:
                reply = answer(c)
            except TimeoutError:
                continue  # still open: one of the newest
            closed += 1
            refused += reply.startswith(b"HTTP/1.1 503 ")
            c.close()
        for c in crowd:
            c.close()
        assert closed >= 250
        assert refused >= 1
        deadline = time.monotonic() + 10
        while srv.fds() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.fds() <= baseline
        assert "connections open (the cap)" in srv.output()


def test_busy_connections_make_newcomers_503(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 * MiB)
    with serving("H11Protocol", {"ZCIO_UVICORN_MAX_CONNECTIONS": "8"}) as srv:
        assert srv.get().status_code == 200
        baseline = srv.fds()
        stalled = []
        for _ in range(8):  # each asks for 256 MiB and reads none of it: busy, not evictable
            c = connect(srv)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(f"GET /file?path={big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            stalled.append(c)
        time.sleep(0.5)
        with connect(srv) as c:
            reply = answer(c)
        assert reply.startswith(b"HTTP/1.1 503 "), reply[:100]
        for c in stalled:
            c.close()
        assert srv.get().status_code == 200
        deadline = time.monotonic() + 10
        while srv.fds() > baseline and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.fds() <= baseline


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_client_that_reads_nothing_is_dropped(tmp_path: Path, loop: str) -> None:
    """A client asks for 256 MiB and reads none of it: after the send timeout (1 s here) the
    kernel drops the connection, and the server's fds come back while the client still holds
    its socket open."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 * MiB)
    env = {"ZCIO_UVICORN_SEND_TIMEOUT": "1"}
    with serving("HttpToolsProtocol", env, loop=loop) as srv:
        assert srv.get().status_code == 200
        baseline = srv.fds()
        with connect(srv) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(f"GET /file?path={big} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            deadline = time.monotonic() + 15
            while srv.fds() <= baseline and time.monotonic() < deadline:
                time.sleep(0.05)  # the response is under way: the file is open
            assert srv.fds() > baseline
            while srv.fds() > baseline and time.monotonic() < deadline + 15:
                time.sleep(0.1)
            assert srv.fds() <= baseline
        assert srv.get().status_code == 200


# -- what it logs ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_logs_what_it_offers_and_what_it_moved(protocol: str, tmp_path: Path) -> None:
    data = make_data(3 * MiB + 5, seed=9)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    with serving(protocol) as srv:
        r = srv.get(f"/file?path={path}")
        assert sha(r.content) == sha(data)
        log = srv.stop()
    offered = next(line for line in log.splitlines() if "advertises" in line)
    assert "http.response.zerocopysend" in offered and "http.response.pathsend" in offered
    assert "zero-copy: sendfile" in offered
    assert any("limits:" in line and "8192" in line for line in log.splitlines())
    moved = next(line for line in log.splitlines() if "bytes moved:" in line)
    assert f"sendfile {len(data):,} B" in moved


def test_logs_when_every_byte_is_copied_and_can_be_quiet(tmp_path: Path) -> None:
    with serving("HttpToolsProtocol", {"ZCIO_DISABLE": "sendfile"}) as srv:
        assert srv.get().status_code == 200
        log = srv.stop()
    offered = next(line for line in log.splitlines() if "advertises" in line)
    assert "every byte is copied" in offered and "ZCIO_DISABLE" in offered
    with serving("HttpToolsProtocol", {"ZCIO_UVICORN_REPORT": "0"}) as srv:
        assert srv.get().status_code == 200
        log = srv.stop()
    assert "zcio_uvicorn" not in log


def test_a_bad_variable_stops_uvicorn_at_startup() -> None:
    with pytest.raises(RuntimeError, match="ZCIO_UVICORN_HEAD_TIMEOUT"):
        Server("H11Protocol", {"ZCIO_UVICORN_HEAD_TIMEOUT": "soon"})


# -- the settings, without a server ------------------------------------------------------------


def test_limits_from_the_environment_and_back() -> None:
    env = {"ZCIO_UVICORN_MAX_HEADERS": "50", "ZCIO_UVICORN_HEAD_TIMEOUT": "off"}
    limits = zcio_uvicorn.Limits.from_environment(env)
    assert limits.max_headers == 50 and limits.head_timeout is None
    assert limits.max_request_line == 8192
    assert zcio_uvicorn.Limits.from_environment(limits.environment()) == limits
    with pytest.raises(ValueError, match="ZCIO_UVICORN_MAX_HEADERS"):
        zcio_uvicorn.Limits.from_environment({"ZCIO_UVICORN_MAX_HEADERS": "-1"})
    with pytest.raises(ValueError, match="max_connections"):
        zcio_uvicorn.Limits(max_connections=0)


def test_configure_makes_a_subclass() -> None:
    limits = zcio_uvicorn.Limits(head_timeout=3)
    cls = zcio_uvicorn.HttpToolsProtocol.configure(limits, report=False)
    assert issubclass(cls, zcio_uvicorn.HttpToolsProtocol)
    assert cls.limits is limits and cls.report is False
    assert zcio_uvicorn.HttpToolsProtocol.report is True
    assert zcio_uvicorn.HttpToolsProtocol.limits.head_timeout == 10.0


# -- zcio serve ---------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_zcio_serve_options(tmp_path: Path, workers: str) -> None:
    """The limits reach every worker: a low request-line limit, a short head timeout."""
    from _cli import Command

    (tmp_path / "a.txt").write_text("a")
    options = ["--max-request-line", "64", "--head-timeout", "1", "--max-headers", "0"]
    command = Command(["serve", str(tmp_path), "--port", "0", "--workers", workers, *options])
    try:
        port = command.port()
        line = command.wait_for(r"zcio serve: limits: .*")[0]
        assert "request line 64 B" in line and "head timeout 1 s" in line
        assert "/ off" in line  # --max-headers 0
        for target, status in ((b"/a.txt", b" 200 "), (b"/" + b"x" * 64, b" 414 ")):
            for _ in range(int(workers) * 2):  # a new connection each: both workers answer
                with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
                    c.sendall(
                        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    assert answer(c).split(b"\r\n")[0].startswith(b"HTTP/1.1" + status)
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as c:
            c.sendall(b"GET /a.txt HTTP/1.1\r\n")
            assert answer(c).startswith(b"HTTP/1.1 408 ")
    finally:
        exit_status = command.stop()
    assert exit_status == 0, command.output
    assert "Traceback" not in command.output
    assert "zcio_uvicorn:" not in command.output  # its own lines are off under zcio serve


def test_zcio_serve_bad_limits_are_one_line(tmp_path: Path) -> None:
    from _cli import run

    status, out = run(["serve", str(tmp_path), "--head-timeout", "soon"])
    assert status == 2 and "--head-timeout" in out and "Traceback" not in out
    status, out = run(["serve", str(tmp_path)], env={"ZCIO_UVICORN_MAX_HEADERS": "many"})
    assert status == 2 and "ZCIO_UVICORN_MAX_HEADERS" in out and "Traceback" not in out


def test_zcio_serve_help_shows_the_library_defaults() -> None:
    from zcio_cli import _serve

    defaults = zcio_uvicorn.Limits()
    for flag, _, _, text in _serve.LIMITS:
        name = flag.removeprefix("--").replace("-", "_")
        if name != "max_connections":
            assert f"(default: {getattr(defaults, name):g})" in text


# -- in process, each limit alone -------------------------------------------------------------


class _Transport:
    """The little of an asyncio transport a uvicorn protocol uses before an app runs."""

    def __init__(self) -> None:
        self.buffer = b""
        self.closed = False

    def get_extra_info(self, key: str) -> object:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(key)

    def write(self, data: bytes) -> None:
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def _first_line(protocol: str, limits: zcio_uvicorn.Limits, request: bytes) -> bytes:
    """Feed ``request`` (in 1 KiB pieces) to a fresh protocol; the first line it answers."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("a refused request must not reach the app")

    async def main() -> bytes:
        cls = getattr(zcio_uvicorn, protocol).configure(limits, report=False)
        config = Config(app=app, log_level="critical")
        proto = cls(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        proto.connection_made(transport)
        for at in range(0, len(request), 1024):
            if transport.closed:
                break
            proto.data_received(request[at : at + 1024])
        proto.connection_lost(None)
        return transport.buffer.split(b"\r\n")[0]

    return asyncio.run(main())


OFF = zcio_uvicorn.Limits(
    max_request_line=None,
    max_header_bytes=None,
    max_headers=None,
    head_timeout=None,
    max_connections=None,
    send_timeout=None,
)


HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
ENDLESS = HEAD + b"c: " + b"x" * 4000


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("limit", "request_", "status"),
    [
        ({"max_request_line": 10}, b"GET /0123456789 HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        ({"max_request_line": 10}, b"GET /" + b"x" * 20000, b"414"),
        ({"max_headers": 3}, HEAD + b"a: b\r\n" * 3 + b"\r\n", b"431"),
        (
            {"max_header_bytes": 100},
            b"GET / HTTP/1.1\r\nHost: x\r\nc: " + b"x" * 100 + b"\r\n\r\n",
            b"431",
        ),
        (
            {"max_header_bytes": 1000, "max_request_line": 10},
            b"GET / HTTP/1.1\r\nc: " + b"x" * 4000,
            b"431",
        ),
    ],
)
def test_each_limit_alone(
    protocol: str, limit: dict[str, int], request_: bytes, status: bytes
) -> None:
    """Each size limit works with every other one off, on both protocols."""
    line = _first_line(protocol, OFF.replace(**limit), request_)
    assert line.startswith(b"HTTP/1.1 " + status + b" "), line
