"""probe() on every kind of object zcio accepts."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import anyio
import pytest

import zcio
from _support import Receiver, backend, tcp_listener, tls_contexts
from zcio import Kind, Method


def test_raw_fds_and_files(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with open(path, "rb") as f:
        d = zcio.probe(f)
        assert d.kind is Kind.REGULAR_FILE
        assert d.readable and not d.writable
        assert d.sources == {
            Method.SENDFILE,
            Method.SPLICE,
            Method.COPY_FILE_RANGE,
            Method.USERSPACE,
        }
        assert d.destinations == frozenset()
        assert d.size == 3
        assert zcio.probe(f.fileno()).kind is Kind.REGULAR_FILE
    assert zcio.probe(path).kind is Kind.REGULAR_FILE
    assert zcio.probe(str(path)).fd == -1
    assert zcio.probe(tmp_path).kind is Kind.OTHER
    with open(path, "ab") as f:
        d = zcio.probe(f)
        assert d.append
        assert d.destinations == {Method.USERSPACE}
    r, w = os.pipe2(os.O_NONBLOCK)
    try:
        assert zcio.probe(r).kind is Kind.PIPE
        assert zcio.probe(w).nonblocking
        assert Method.TEE in zcio.probe(r).sources
    finally:
        os.close(r)
        os.close(w)
    null = os.open("/dev/null", os.O_WRONLY)
    try:
        assert zcio.probe(null).kind is Kind.CHAR_DEVICE
    finally:
        os.close(null)


@pytest.mark.parametrize(
    ("family", "type_", "kind"),
    [
        (socket.AF_INET, socket.SOCK_STREAM, Kind.TCP),
        (socket.AF_INET6, socket.SOCK_STREAM, Kind.TCP),
        (socket.AF_UNIX, socket.SOCK_STREAM, Kind.UNIX_STREAM),
        (socket.AF_INET, socket.SOCK_DGRAM, Kind.DATAGRAM),
        (socket.AF_UNIX, socket.SOCK_DGRAM, Kind.DATAGRAM),
        (socket.AF_UNIX, socket.SOCK_SEQPACKET, Kind.DATAGRAM),
    ],
)
def test_sockets(family: int, type_: int, kind: Kind) -> None:
    try:
        sock = socket.socket(family, type_)
    except OSError:
        pytest.skip("address family not available")
    with sock:
        d = zcio.probe(sock)
        assert d.kind is kind
        assert not d.nonblocking
        sock.setblocking(False)
        assert zcio.probe(sock).nonblocking
        assert zcio.probe(sock.fileno()).kind is kind


def test_ssl_socket_is_tls() -> None:
    tls = tls_contexts()
    lsock, port = tcp_listener()
    rx = Receiver(lsock, tls=tls.server).start()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with tls.client.wrap_socket(raw, server_hostname="localhost") as s:
        d = zcio.probe(s)
        assert d.kind is Kind.TLS
        assert d.sources == d.destinations == {Method.USERSPACE}
        assert "TCP" in d.detail
        s.unwrap()
    rx.result()


def test_wrong_and_closed_objects() -> None:
    with pytest.raises(TypeError):
        zcio.probe(1.5)
    with pytest.raises(TypeError):
        zcio.probe(True)
    with pytest.raises(TypeError):
        zcio.probe(object())
    with pytest.raises(ValueError, match=">= 0"):
        zcio.probe(-1)
    s = socket.socket()
    s.close()
    with pytest.raises(ValueError, match="closed"):
        zcio.probe(s)
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError, match="Bad file descriptor"):
        zcio.probe(r)


def test_plan_of_real_objects(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    a, b = socket.socketpair()
    with a, b:
        p = zcio.plan(path, a)
        assert p.method is Method.SENDFILE
        assert p.src is Kind.REGULAR_FILE and p.dst is Kind.UNIX_STREAM
        assert zcio.plan(a, b).method is Method.SPLICE


@pytest.mark.anyio
async def test_streams_of_every_backend() -> None:
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        d = zcio.probe(stream)
        assert d.kind is Kind.TCP
        assert d.nonblocking
        assert "anyio" in d.owner
    rx.result()
    if backend() == "trio":
        import trio

        lsock, port = tcp_listener()
        rx = Receiver(lsock).start()
        async with await trio.open_tcp_stream("127.0.0.1", port) as tstream:
            assert zcio.probe(tstream).kind is Kind.TCP
        rx.result()
    else:
        lsock, port = tcp_listener()
        rx = Receiver(lsock).start()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        transport: Any = writer.transport
        assert zcio.probe(writer).kind is Kind.TCP
        assert zcio.probe(transport).kind is Kind.TCP
        writer.close()
        await writer.wait_closed()
        with pytest.raises(ValueError, match="closed"):
            zcio.probe(writer)
        rx.result()
