"""The README's proxies, run as programs: bytes both ways, half-close, then the next client."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import pytest

from _support import free_port, make_data, tcp_listener

EXAMPLES = Path(__file__).parent.parent / "examples"
REQUEST = make_data(3_000_000, seed=31)
RESPONSE = make_data(2_000_000, seed=32)


RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"


def upstream(lsock: socket.socket, clients: int, seen: list[bytes]) -> None:
    """Reads each request to its EOF, then answers: works only if half-close crosses the proxy.

    The first connection is reset instead: the proxy must survive it.
    """
    with lsock:
        lsock.settimeout(20)
        conn, _ = lsock.accept()
        conn.recv(1000)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        conn.close()
        for _ in range(clients):
            conn, _ = lsock.accept()
            with conn:
                conn.settimeout(20)
                got = bytearray()
                while chunk := conn.recv(1 << 16):
                    got += chunk
                seen.append(bytes(got))
                conn.sendall(RESPONSE)


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=20)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.parametrize("name", ["proxy_trio.py", "proxy_asyncio.py"])
def test_proxy(name: str) -> None:
    lsock, target_port = tcp_listener()
    seen: list[bytes] = []
    server = threading.Thread(target=upstream, args=(lsock, 2, seen), daemon=True)
    server.start()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name), str(port), "127.0.0.1", str(target_port)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with connect(port) as c:  # the upstream resets this one: the proxy closes it too
            c.sendall(b"x" * 5000)
            with suppress(ConnectionResetError):
                while c.recv(1 << 16):
                    pass
        for _ in range(2):
            with connect(port) as c:
                c.sendall(REQUEST)
                c.shutdown(socket.SHUT_WR)
                got = bytearray()
                while chunk := c.recv(1 << 16):
                    got += chunk
            assert bytes(got) == RESPONSE
        server.join(20)
        assert seen == [REQUEST, REQUEST]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert err.count("connection ended") == 1  # the reset one, logged; the proxy went on
    assert "Traceback" not in err


def test_trio_file_server(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(REQUEST)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "trio_file_server.py"), str(port), str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for name, status, body in [
            (b"/data.bin", b"200", REQUEST),
            (b"/missing", b"404", b""),
            (b"/../etc/passwd", b"404", b""),
        ]:
            with connect(port) as c:
                c.sendall(b"GET " + name + b" HTTP/1.0\r\n\r\n")
                got = bytearray()
                while chunk := c.recv(1 << 16):
                    got += chunk
            head, _, rest = bytes(got).partition(b"\r\n\r\n")
            assert head.split()[1] == status
            assert rest == body
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "Traceback" not in err
