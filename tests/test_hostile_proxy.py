"""``zcio proxy`` against a crowd, round 2 (issue 21): at ``--max-connections`` an idle relay is
closed for a new client (logged), the pipe pool follows ``--max-connections``, and relays that
copy through user space for lack of a pipe are warned about (once, not per relay).

Loopback only; every wait is bounded and nothing is asserted about a duration.
"""

from __future__ import annotations

import re
import socket
from contextlib import suppress

import pytest

from _cli import TIMEOUT, run
from test_cli_proxy import BACKENDS, echo, exchange, proxy, server


def ping(sock: socket.socket, what: bytes) -> bytes:
    sock.sendall(what)
    got = b""
    while len(got) < len(what) and (chunk := sock.recv(len(what) - len(got))):
        got += chunk
    return got


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_client_gets_in_at_the_limit(backend: str) -> None:
    """12 clients against a cap of 10, each idle after one exchange, then a new one: the two
    over the cap and the new one are all relayed (each closing the relay idle longest), and
    the proxy says so."""
    with (
        server(echo) as target,
        proxy(
            *("--target", f"127.0.0.1:{target.port}", "--max-connections", "10"),
            *("--backend", backend),
        ) as (command, port),
    ):
        crowd = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(12)]
        try:
            answers = [ping(sock, b"ping %d" % n) for n, sock in enumerate(crowd)]
            assert answers == [b"ping %d" % n for n in range(12)]
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as newcomer:
                assert ping(newcomer, b"newcomer") == b"newcomer"
            closed = 0
            for sock in crowd:
                sock.settimeout(0.2)
                try:
                    closed += sock.recv(1) == b""
                except TimeoutError:
                    pass  # still relayed
                except OSError:
                    closed += 1  # reset
            assert closed >= 3
        finally:
            for sock in crowd:
                sock.close()
        command.wait_for(r"closed for a new client \(at the limit of 10\)")
        command.wait_for(r"at the limit of 10 connections: idle relays are closed for new ones")
        assert exchange(port, b"after") == b"after"
        assert command.stop() == 0
    assert "Traceback" not in command.output


@pytest.mark.parametrize(("options", "pipes"), [((), 2 * 7), (("--mirror",), 5 * 7)])
def test_the_pipe_pool_follows_max_connections(options: tuple[str, ...], pipes: int) -> None:
    with server(echo) as target, server(echo) as mirror:
        extra = [*options, f"127.0.0.1:{mirror.port}"] if options else []
        with proxy("--target", f"127.0.0.1:{target.port}", "--max-connections", "7", *extra) as (
            command,
            port,
        ):
            line = command.wait_for(r"pipe pool: up to \d+ pipes of 256\.0 KiB.*")[0]
            assert f"up to {pipes} pipes" in line
            assert exchange(port, b"through") == b"through"
            assert command.stop() == 0


def test_help_says_what_the_pipes_cost() -> None:
    status, out = run(["proxy", "--help"])
    assert status == 0
    text = " ".join(out.split())
    assert "2 pipes of 256 KiB per connection" in text and "512 MiB" in text


def test_copies_for_lack_of_pipes_are_warned_about_once() -> None:
    """Few fds: relays get sockets but no pipes and copy through user space. One warning
    says so with a count (not one per relay), and every relay is served."""
    with (
        server(echo) as target,
        proxy("--target", f"127.0.0.1:{target.port}", max_fds=48) as (
            command,
            port,
        ),
    ):
        clients = []
        try:
            for _ in range(8):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
            answered = 0
            for n, sock in enumerate(clients):
                with suppress(OSError):  # closed by the proxy when it had no fd for the target
                    answered += ping(sock, b"ping %d" % n) == b"ping %d" % n
            assert answered >= 1
            line = command.wait_for(r"WARNING: \d+ transfer\(s\) copied through user space.*")[0]
            assert int(re.findall(r"(\d+) transfer", line)[0]) >= 1
        finally:
            for sock in clients:
                sock.close()
        assert command.stop() == 0
    assert command.output.count("copied through user space for lack of a pipe") == 1


def test_a_pool_keeps_at_most_keep_idle_pipes() -> None:
    """zcio.PipePool(keep=N): a burst may use up to ``limit`` pipes; only N stay open after."""
    import zcio

    pool = zcio.PipePool(limit=6, size=64 * 1024, keep=2)
    pipes = [pool.acquire() for _ in range(6)]
    assert all(p is not None for p in pipes) and pool.acquire() is None
    for pipe in pipes:
        assert pipe is not None
        pool.release(pipe)
    assert (pool.busy, pool.idle) == (0, 2)
    pool.clear()
