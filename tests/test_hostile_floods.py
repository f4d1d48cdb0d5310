"""Hostile input, round 2, against zcio_uvicorn's protocols on real uvicorn servers (h11 and
httptools, asyncio and uvloop): floods through chunked trailers and pipelining, slow bodies,
and slow uploaders at the connection cap.

Each flood runs a few seconds from one connection while another client keeps asking for a
small response, and measures from the outside what matters: the server's RSS growth, the bytes
it accepted, the other client's status codes and latency (printed; only generous bounds are
asserted), the server's fds afterwards. Loopback only; every loop is bounded.
"""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

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
ENV = {"ZCIO_UVICORN_BODY_TIMEOUT": "1.5", "ZCIO_UVICORN_MAX_CONNECTIONS": "40"}


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
    ``408`` once the body timeout (1.5 s here) passes."""
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
    assert "request body: nothing for 1.5 s" in server.output()


def test_a_slow_but_steady_upload_completes(server: Server) -> None:
    """A piece every 0.5 s (within the body timeout) is never cut off."""
    body = make_data(8, seed=5)
    with connect(server) as c:
        c.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n")
        c.sendall(b"Connection: close\r\n\r\n")
        for n in range(0, 8, 2):
            time.sleep(0.5)
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
    assert "closed for a new connection while sending a body" in server.output()
    fds_come_back(server, baseline)
