"""``zcio proxy`` as a subprocess on loopback: both directions relayed with splice, half-close,
a mirror that gets every byte, a mirror that stalls or is down (dropped, the connection goes
on), the connection limit, the idle timeout and a graceful shutdown.

Every relay test runs on asyncio, uvloop and trio, natively and with ``ZCIO_DISABLE=all``,
checks a hash of what came back, and reads the proxy's own counters (its exit summary) to see
which method moved the bytes.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest

from _cli import TIMEOUT, Command, moved, signal

DATA = os.urandom(1 << 20) * 6 + b"end"  # six MiB and a bit: many pipe loads


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """A loopback TCP server in a thread: ``handle(conn)`` per connection, until closed."""

    def __init__(self, handle: Callable[[socket.socket], None], rcvbuf: int | None = None):
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.handle = handle
        self.conns: list[socket.socket] = []
        self.closed = threading.Event()
        self.threads: list[threading.Thread] = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(TIMEOUT)
            self.conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, conn: socket.socket) -> None:
        with suppress(OSError):
            self.handle(conn)

    def close(self) -> None:
        self.closed.set()
        self.accepter.join(TIMEOUT)
        for thread in self.threads:
            thread.join(TIMEOUT)
        for conn in self.conns:
            conn.close()
        self.sock.close()


@contextmanager
def server(handle: Callable[[socket.socket], None], rcvbuf: int | None = None) -> Iterator[Server]:
    running = Server(handle, rcvbuf)
    try:
        yield running
    finally:
        running.close()


def echo(conn: socket.socket) -> None:
    """Send back what comes, then pass the half-close on."""
    while chunk := conn.recv(1 << 16):
        conn.sendall(chunk)
    conn.shutdown(socket.SHUT_WR)


class Recorder:
    """A mirror that keeps what it got (and answers a little, which the proxy discards)."""

    def __init__(self) -> None:
        self.got = bytearray()
        self.done = threading.Event()

    def __call__(self, conn: socket.socket) -> None:
        conn.sendall(b"the mirror's answer is thrown away")
        while chunk := conn.recv(1 << 16):
            self.got += chunk
        self.done.set()


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, half-close, and read the answer to its end."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        got = bytearray()
        reader = threading.Thread(target=lambda: _read_all(sock, got), daemon=True)
        reader.start()
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        reader.join(TIMEOUT)
        assert not reader.is_alive(), "the answer did not end"
        return bytes(got)


def _read_all(sock: socket.socket, into: bytearray) -> None:
    while chunk := sock.recv(1 << 16):
        into += chunk


BACKENDS = ["asyncio", "uvloop", "trio"]


@pytest.fixture(params=["native", "fallback"])
def proxy_env(request: pytest.FixtureRequest) -> dict[str, str]:
    return {} if request.param == "native" else {"ZCIO_DISABLE": "all"}


@contextmanager
def proxy(
    *args: str, env: dict[str, str] | None = None, max_fds: int | None = None
) -> Iterator[tuple[Command, int]]:
    options = ["proxy", "--listen", "127.0.0.1:0", "--stats-interval", "0", *args]
    command = Command(options, env, max_fds)
    try:
        yield command, command.port()
    finally:
        command.kill()


def assert_moved_by(output: str, native: bool, method: str, at_least: int) -> None:
    if native:
        assert moved(output, method) >= at_least, output
        assert moved(output, "userspace") == 0, output
    else:
        assert moved(output, "userspace") >= at_least, output
        assert moved(output, "splice") == moved(output, "tee") == 0, output


@pytest.mark.parametrize("backend", BACKENDS)
def test_relays_both_ways_with_half_close(backend: str, proxy_env: dict[str, str]) -> None:
    with (
        server(echo) as target,
        proxy("--target", f"127.0.0.1:{target.port}", "--backend", backend, env=proxy_env) as (
            command,
            port,
        ),
    ):
        for _ in range(2):
            assert sha(exchange(port, DATA)) == sha(DATA)
        assert command.stop(signal.SIGTERM) == 0
    out = command.output
    assert "Traceback" not in out, out
    assert f"relaying to 127.0.0.1:{target.port} ({backend})" in out  # which backend runs
    assert out.count(": done, ") == 2, out
    assert "exit: 2 connection(s), 0 active" in out
    assert_moved_by(out, not proxy_env, "splice", 4 * len(DATA))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mirror_gets_every_byte_the_client_sends(backend: str, proxy_env: dict[str, str]) -> None:
    recorder = Recorder()
    with server(echo) as target, server(recorder) as mirror, proxy(
        "--target", f"127.0.0.1:{target.port}", "--mirror", f"127.0.0.1:{mirror.port}",
        "--backend", backend, env=proxy_env,
    ) as (command, port):  # fmt: skip
        assert sha(exchange(port, DATA)) == sha(DATA)
        assert recorder.done.wait(TIMEOUT)
        assert command.stop() == 0
    assert sha(bytes(recorder.got)) == sha(DATA)
    out = command.output
    assert "mirror dropped" not in out and "0 mirror drop(s)" in out, out
    assert_moved_by(out, not proxy_env, "tee", len(DATA))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_stalled_mirror_is_dropped_and_the_client_is_served(
    backend: str, proxy_env: dict[str, str]
) -> None:
    hold = threading.Event()
    data = DATA * 3  # far more than the stalled mirror's buffers hold

    def stalled(conn: socket.socket) -> None:
        hold.wait(TIMEOUT)  # reads nothing

    with server(echo) as target, server(stalled, rcvbuf=64 * 1024) as mirror, proxy(
        "--target", f"127.0.0.1:{target.port}", "--mirror", f"127.0.0.1:{mirror.port}",
        "--mirror-lag", "0.1", "--backend", backend, env=proxy_env,
    ) as (command, port):  # fmt: skip
        try:
            assert sha(exchange(port, data)) == sha(data)
            command.wait_for(r"#1 .*: mirror dropped: mirror 1: dropped, still busy 0.1 s")
            assert command.stop() == 0
        finally:
            hold.set()
    assert "1 mirror drop(s)" in command.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mirror_that_is_down_is_skipped(backend: str) -> None:
    with socket.socket() as down:
        down.bind(("127.0.0.1", 0))  # bound, never listening: refused
        with server(echo) as target, proxy(
            "--target", f"127.0.0.1:{target.port}",
            "--mirror", f"127.0.0.1:{down.getsockname()[1]}", "--backend", backend,
        ) as (command, port):  # fmt: skip
            assert exchange(port, b"still served") == b"still served"
            command.wait_for(r"mirror 127\.0\.0\.1:\d+ unavailable \(.*\): relaying without it")
            assert command.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_idle_connections_are_closed(backend: str) -> None:
    with (
        server(echo) as target,
        proxy(
            "--target", f"127.0.0.1:{target.port}", "--idle-timeout", "0.3", "--backend", backend
        ) as (command, port),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"ping")
            assert sock.recv(4) == b"ping"
            assert sock.recv(1) == b""  # nothing more for 0.3 s: the proxy closed it
        command.wait_for(r"idle for 0\.3 s, closing")
        assert command.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_connection_limit_makes_new_clients_wait(backend: str) -> None:
    """While every relay moves bytes, a new client waits in the backlog (an idle relay would
    be closed for it: tests/test_hostile_proxy.py)."""
    with (
        server(echo) as target,
        proxy(
            "--target", f"127.0.0.1:{target.port}", "--max-connections", "1", "--backend", backend
        ) as (command, port),
    ):
        first = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        first.sendall(b"one")
        assert first.recv(3) == b"one"
        stop = threading.Event()

        def keep_busy() -> None:  # bytes both ways, all the time: never idle
            while not stop.is_set():
                with suppress(OSError):
                    first.sendall(b"x" * 4096)
                    first.recv(65536)

        busy = threading.Thread(target=keep_busy, daemon=True)
        busy.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as second:
                second.sendall(b"two")  # the kernel queues it; the proxy does not take it yet
                second.settimeout(0.3)
                with pytest.raises(TimeoutError):
                    second.recv(3)
                command.wait_for("at the limit of 1 connections: new ones wait")
                stop.set()
                busy.join(TIMEOUT)
                first.close()  # a slot frees up: the second one is relayed
                second.settimeout(TIMEOUT)
                assert second.recv(3) == b"two"
        finally:
            stop.set()
            first.close()
        assert command.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_graceful_shutdown_lets_active_relays_finish_then_closes_them(backend: str) -> None:
    with (
        server(echo) as target,
        proxy("--target", f"127.0.0.1:{target.port}", "--grace", "0.5", "--backend", backend) as (
            command,
            port,
        ),
    ):
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"hello")
            assert sock.recv(5) == b"hello"
            command.proc.send_signal(signal.SIGTERM)
            command.wait_for("SIGTERM: shutting down")
            sock.sendall(b"during the grace")  # an active relay goes on
            assert sock.recv(16) == b"during the grace"
            assert sock.recv(1) == b""  # then the grace is over and it is closed
        assert command.finish() == 0
        # New connections are refused once the listener is closed.
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    out = command.output
    assert "waiting up to 0.5 s for 1 connection(s)" in out
    assert "exit: 1 connection(s), 0 active" in out


def test_a_client_reset_ends_only_its_connection() -> None:
    with server(echo) as target, proxy("--target", f"127.0.0.1:{target.port}") as (command, port):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.sendall(b"x" * 100_000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # an RST
        assert exchange(port, DATA) == DATA  # the proxy goes on
        assert command.stop() == 0
    assert "Traceback" not in command.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_running_out_of_fds_ends_connections_not_the_proxy(backend: str) -> None:
    # Each relayed connection holds up to six fds (two sockets, two pipes): 48 run out fast.
    # Without fds for a pipe a relay copies (counted); without one for a socket it ends.
    with (
        server(echo) as target,
        proxy("--target", f"127.0.0.1:{target.port}", "--backend", backend, max_fds=48) as (
            command,
            port,
        ),
    ):
        clients = [
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(20)
        ]
        answered = 0
        for sock in clients:
            with suppress(OSError):  # closed or reset by the proxy: out of fds
                sock.sendall(b"ping")
                answered += sock.recv(4) == b"ping"
        for sock in clients:
            sock.close()
        assert 0 < answered < len(clients)
        command.wait_for(r"Too many open files")
        ended = re.compile(r"#\d+ .*: (done|ended|target .* closing the client)")
        deadline = time.monotonic() + TIMEOUT
        while len(ended.findall(command.output)) < len(clients):  # the proxy lets go of them
            assert time.monotonic() < deadline, command.output
            time.sleep(0.05)
        assert exchange(port, DATA) == DATA  # fds are back: the proxy serves again
        assert command.stop() == 0
    assert "Traceback" not in command.output
