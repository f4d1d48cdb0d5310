"""Hostile input, round 2, against zcio_uvicorn's protocols on real uvicorn servers (h11 and
httptools, asyncio and uvloop): floods through chunked trailers and pipelining, slow bodies,
and slow uploaders at the connection cap.

Each flood runs a few seconds from one connection while another client keeps asking for a
small response, and measures from the outside what matters: the server's RSS growth, the bytes
it accepted, the other client's status codes and latency (printed; only generous bounds are
asserted), the server's fds afterwards. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import zcio_uvicorn
from _support import make_data, sha
from test_zcio_uvicorn_limits import TIMEOUT, Server, answer, connect, serving

FLOOD_SECONDS = 3.0
MiB = 1 << 20
CONFIGS = [
    (protocol, loop)
    for protocol in ("HttpToolsProtocol", "H11Protocol")
    for loop in ("asyncio", "uvloop")
]
#: A body timeout a test can wait for, and a cap a test can fill.
ENV = {"ZCIO_UVICORN_BODY_TIMEOUT": "2", "ZCIO_UVICORN_MAX_CONNECTIONS": "40"}


@pytest.fixture(scope="module", params=CONFIGS, ids=["-".join(c) for c in CONFIGS])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    protocol, loop = request.param
    with serving(protocol, ENV, loop) as srv:
        yield srv


class Prompt(threading.Thread):
    """Another client: a fresh connection per ``GET /text`` every 50 ms until stopped."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.statuses: list[int | str] = []
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        for _ in range(1000):  # bounded: 50 s at the most
            if self.stop.is_set():
                return
            start = time.monotonic()
            try:
                self.statuses.append(self.server.get(timeout=TIMEOUT).status_code)
            except httpx.HTTPError as exc:
                self.statuses.append(type(exc).__name__)
            self.latencies.append(time.monotonic() - start)
            self.stop.wait(0.05)

    def __enter__(self) -> Prompt:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.join(2 * TIMEOUT)

    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] if len(self.latencies) > 1 else 0.0


def measured(server: Server, what: str, flood: Callable[[], int]) -> tuple[int, int, Prompt]:
    """Run ``flood`` (it returns the bytes the server accepted) beside a prompt client:
    (bytes accepted, RSS growth at the peak, the prompt client). Printed for the record."""
    assert server.get().status_code == 200
    before = peak = server.rss()
    with Prompt(server) as prompt, ThreadPoolExecutor(1) as pool:
        running = pool.submit(flood)
        while not running.done():
            peak = max(peak, server.rss())
            time.sleep(0.1)
        accepted = running.result()
    growth = max(peak, server.rss()) - before
    print(
        f"{what}: {accepted / MiB:.1f} MiB accepted, RSS +{growth / MiB:.1f} MiB, "
        f"other client {len(prompt.statuses)} requests, p99 {prompt.p99() * 1000:.0f} ms"
    )
    return accepted, growth, prompt


def logged(server: Server, text: str) -> bool:
    """``text`` is in the server's log (its stderr is read in a thread: wait a little)."""
    deadline = time.monotonic() + TIMEOUT
    while text not in server.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    return text in server.output()


def fds_come_back(server: Server, baseline: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while server.fds() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.fds() <= baseline


def send_for(sock: socket.socket, data: bytes, seconds: float) -> int:
    """Send ``data`` again and again for ``seconds`` or until the server closes; bytes sent."""
    sent = 0
    deadline = time.monotonic() + seconds
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            sent += sock.send(data)
        except TimeoutError:
            continue  # the server is not reading: stay within the flood's time
        except (BrokenPipeError, ConnectionResetError):
            break
    return sent


# -- chunked trailers --------------------------------------------------------------------------


def test_an_endless_trailer_is_cut_off(server: Server) -> None:
    """After the last chunk, a trailer field that never ends: the server closes the
    connection once it passes the header limit (32 KiB), with no answer beyond the one the
    app gave, and others are served throughout."""
    baseline = server.fds()

    def flood() -> int:
        with connect(server) as c:
            c.sendall(b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            c.sendall(b"5\r\nhello\r\n0\r\nx-trailer: ")
            return send_for(c, b"a" * 65536, FLOOD_SECONDS)

    accepted, growth, prompt = measured(server, "trailer flood", flood)
    assert accepted < 16 * MiB  # cut off: what is left is what the socket buffers took
    assert growth < 48 * MiB
    assert set(prompt.statuses) == {200}
    fds_come_back(server, baseline)


def test_many_trailer_fields_are_cut_off(server: Server) -> None:
    """Trailer fields one after another, each short: refused past the field limit (100)."""
    with connect(server) as c:
        c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.sendall(b"5\r\nhello\r\n0\r\n")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for n in range(2000):
                c.sendall(b"x-%d: v\r\n" % n)
        reply = answer(c)
    assert b" 200 " not in reply  # the upload never completed
    assert server.get().status_code == 200


def test_a_small_trailer_is_fine(server: Server) -> None:
    body = make_data(300_000, seed=3)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:100_000], body[100_000:]))
    with connect(server) as c:
        c.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n" + chunks + b"0\r\nx-checksum: abc\r\n\r\n"
        )
        reply = answer(c)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert reply.endswith(b"300000 " + sha(body).encode())


# -- pipelining --------------------------------------------------------------------------------


def test_a_pipelining_flood_keeps_the_server_small(server: Server) -> None:
    """One client writes tiny pipelined requests 256 KiB at a time and reads the answers: the
    server holds a bounded queue (reading paused until it drains), its RSS stays within a
    generous bound, and another client is served throughout."""
    request = b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n"
    batch = request * (256 * 1024 // len(request))
    baseline = server.fds()

    def flood() -> int:
        with connect(server) as c:
            stop = threading.Event()

            def drain() -> None:
                c.settimeout(0.5)
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        if not c.recv(1 << 20):
                            return

            reader = threading.Thread(target=drain, daemon=True)
            reader.start()
            try:
                return send_for(c, batch, FLOOD_SECONDS)
            finally:
                stop.set()
                reader.join(TIMEOUT)

    accepted, growth, prompt = measured(server, "pipelining flood", flood)
    assert growth < 96 * MiB  # unbounded, it grew by more than 1 GiB in 20 s
    assert set(prompt.statuses) == {200}
    assert accepted > 0
    fds_come_back(server, baseline)


def test_pipelined_requests_are_all_answered_in_order(server: Server) -> None:
    """More pipelined requests than the queue holds, in one write: every one is answered, in
    order (the held bytes are parsed as the queue drains)."""
    paths = [f"/nothing-{n}" if n % 3 else "/text" for n in range(200)]
    data = b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths)
    with connect(server) as c:
        c.sendall(data + b"GET /text HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = answer(c)
    statuses = [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", reply)]
    assert statuses == [200 if p == "/text" else 404 for p in paths] + [200]


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("expect", [False, True], ids=["body", "100-continue"])
def test_a_stalled_body_times_out(server: Server, expect: bool) -> None:
    """Part of a body, then nothing (or ``Expect: 100-continue``, the ``100``, then nothing):
    ``408`` once the body timeout (2 s here) passes."""
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
    with connect(server) as c:
        if expect:
            c.sendall(head + b"Expect: 100-continue\r\n\r\n")
        else:
            c.sendall(head + b"\r\n" + b"x" * 10)
        reply = answer(c)
    if expect:
        assert reply.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), reply[:200]
        reply = reply.split(b"\r\n\r\n", 1)[1]
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert logged(server, "request body: nothing for 2 s")


def test_a_slow_but_steady_upload_completes(server: Server) -> None:
    """A piece every 0.3 s (well within the body timeout) is never cut off."""
    body = make_data(8, seed=5)
    with connect(server) as c:
        c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n")
        c.sendall(b"Connection: close\r\n\r\n")
        for n in range(0, 8, 2):
            time.sleep(0.3)
            c.sendall(body[n : n + 2])
        reply = answer(c)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert reply.endswith(sha(body).encode())


def test_a_large_upload_arrives_whole(server: Server) -> None:
    body = make_data(8 * MiB, seed=7)
    response = httpx.post(server.url + "/upload", content=body, timeout=TIMEOUT)
    assert response.text == f"{len(body)} {sha(body)}"


def test_slow_uploaders_at_the_cap_do_not_shut_others_out(server: Server) -> None:
    """60 clients send a body one byte every 0.5 s (never late) against a cap of 40: a new
    client still gets in, each newcomer closing the uploader that waited longest."""
    baseline = server.fds()
    crowd: list[socket.socket] = []
    try:
        for _ in range(60):
            c = connect(server)
            c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            crowd.append(c)
        stop = threading.Event()

        def dribble() -> None:
            for _ in range(20):
                for c in crowd:
                    with contextlib.suppress(OSError):
                        c.send(b"x")
                if stop.wait(0.5):
                    return

        dribbler = threading.Thread(target=dribble, daemon=True)
        dribbler.start()
        try:
            statuses = [server.get().status_code for _ in range(10)]
        finally:
            stop.set()
            dribbler.join(TIMEOUT)
    finally:
        for c in crowd:
            c.close()
    assert statuses == [200] * 10
    assert logged(server, "closed for a new connection while sending a body")
    fds_come_back(server, baseline)


# -- in process: what a protocol holds, exactly ------------------------------------------------


class _Transport:
    """The little of an asyncio transport a uvicorn protocol uses, counting pauses."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.paused = False

    def get_extra_info(self, key: str) -> object:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(key)

    def write(self, data: bytes) -> None:
        self.buffer += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _in_process(
    protocol: str,
    limits: zcio_uvicorn.Limits,
    pieces: list[bytes],
    check: Callable[[Any, _Transport, list[bytes]], None],
) -> None:
    """Feed ``pieces`` to a fresh protocol (an app that reads bodies and answers 200), let
    the app run, then ``check(protocol, transport, bodies the app got)``."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    bodies: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        cls = getattr(zcio_uvicorn, protocol).configure(limits, report=False)
        config = Config(app=app, log_level="critical")
        proto = cls(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        proto.connection_made(transport)
        try:
            for piece in pieces:
                if not transport.closed:
                    proto.data_received(piece)
            check(proto, transport, bodies)
        finally:
            proto.connection_lost(None)

    asyncio.run(main())


def test_a_read_of_tiny_pipelined_requests_queues_a_bounded_number() -> None:
    """256 KiB of 31-byte requests in one read: httptools is fed a piece at a time until 16
    are queued (more at most by what one piece holds: the first is 4 KiB, 131 requests, the
    next 512 bytes), reading pauses, and the rest waits unparsed."""
    request = b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n"
    read = request * (256 * 1024 // len(request))

    def check(proto: Any, transport: _Transport, bodies: list[bytes]) -> None:
        assert 16 <= len(proto.pipeline) <= 4096 // len(request) + 512 // len(request) + 1
        assert transport.paused
        assert 0 < len(proto._zcio_unparsed) < len(read)

    _in_process("HttpToolsProtocol", zcio_uvicorn.Limits(), [read], check)


def test_many_small_chunks_are_not_a_trailer() -> None:
    """A chunked body of 2,000 small chunks, under a 200-byte header limit: every chunk's size
    line is followed by its data, so nothing counts as a trailer; the app gets it all."""
    body = make_data(100_000, seed=9)
    chunks = b"".join(b"%x\r\n%s\r\n" % (50, body[i : i + 50]) for i in range(0, len(body), 50))
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\nx-sum: 1\r\n\r\n"
    )
    limits = zcio_uvicorn.Limits(max_header_bytes=200)

    def check(proto: Any, transport: _Transport, bodies: list[bytes]) -> None:
        assert not transport.closed

    for protocol in ("HttpToolsProtocol", "H11Protocol"):
        pieces = [request[i : i + 7000] for i in range(0, len(request), 7000)]
        _in_process(protocol, limits, pieces, check)


@pytest.mark.parametrize("protocol", ["HttpToolsProtocol", "H11Protocol"])
def test_an_endless_trailer_closes_without_an_answer(protocol: str) -> None:
    """Past the header limit, a trailer closes the connection: no 431 (the app has the
    request, and may be answering it)."""
    request = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n"
    pieces = [request, b"x-long: "] + [b"a" * 4096] * 64

    def check(proto: Any, transport: _Transport, bodies: list[bytes]) -> None:
        assert transport.closed
        assert b"431" not in transport.buffer

    _in_process(protocol, zcio_uvicorn.Limits(), pieces, check)
