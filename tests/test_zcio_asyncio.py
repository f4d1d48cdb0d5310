"""zcio_asyncio: the loop.sock_sendfile and loop.sendfile contracts on every loop; relay."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

import zcio
import zcio_asyncio
from _support import (
    Receiver,
    answer_after_eof,
    backend,
    file_of,
    make_data,
    sha,
    tcp_listener,
    tls_contexts,
)

pytestmark = pytest.mark.anyio

DATA = make_data(2 * 1024 * 1024 + 3, seed=51)


@pytest.fixture(autouse=True)
def _asyncio_only(anyio_backend: Any) -> None:
    if anyio_backend[0] != "asyncio":
        pytest.skip("asyncio's API needs an asyncio loop")


def native_method(mode: str) -> str:
    return "sendfile" if mode == "native" else "userspace"


async def test_sock_sendfile_contract(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        if backend() == "uvloop":  # the reason this function exists
            with pytest.raises(NotImplementedError), open(path, "rb") as f:
                await loop.sock_sendfile(sock, f)
        with open(path, "rb") as f:
            before = zcio.stats()
            assert await zcio_asyncio.sock_sendfile(sock, f) == len(DATA)
            assert f.tell() == len(DATA)
            assert await zcio_asyncio.sock_sendfile(sock, f, 10, 100) == 100
            assert f.tell() == 110
            # A count past the end returns what there was, as asyncio does.
            assert await zcio_asyncio.sock_sendfile(sock, f, len(DATA) - 5, 100) == 5
            assert f.tell() == len(DATA)
            delta = zcio.stats() - before
    finally:
        sock.close()
    assert sha(rx.result()) == sha(DATA + DATA[10:110] + DATA[-5:])
    assert delta.bytes(native_method(mode)) == len(DATA) + 105


def bad_calls() -> list[tuple[str, dict[str, Any]]]:
    return [
        ("text file", {"text": True}),
        ("count=0", {"count": 0}),
        ("count=-1", {"count": -1}),
        ("count='1'", {"count": "1"}),
        ("offset=-1", {"offset": -1}),
        ("offset=1.5", {"offset": 1.5}),
        ("udp", {"udp": True}),
        ("ssl", {"ssl": True}),
    ]


async def test_argument_checks_match_asyncio(tmp_path: Path) -> None:
    """Same exception type and message as the default loop's own sock_sendfile."""
    path = file_of(tmp_path, DATA)
    loop = asyncio.get_running_loop()
    reference = asyncio.BaseEventLoop.sock_sendfile if backend() == "uvloop" else None
    for name, case in bad_calls():
        family = socket.SOCK_DGRAM if case.get("udp") else socket.SOCK_STREAM
        sock: socket.socket = socket.socket(socket.AF_INET, family)
        if case.get("ssl"):
            sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname="localhost", do_handshake_on_connect=False
            )
        sock.setblocking(False)
        try:
            with open(path, "r" if case.get("text") else "rb") as f:
                args = (case.get("offset", 0), case.get("count"))
                with pytest.raises((TypeError, ValueError)) as ours:
                    await zcio_asyncio.sock_sendfile(sock, f, *args)  # type: ignore[arg-type]
                if reference is None:
                    with pytest.raises((TypeError, ValueError)) as theirs:
                        await loop.sock_sendfile(sock, f, *args)
                    assert type(ours.value) is type(theirs.value), name
                    assert str(ours.value) == str(theirs.value), name
        finally:
            sock.close()
    blocking = socket.socket()
    try:
        with pytest.raises(ValueError, match="non-blocking"), open(path, "rb") as f:
            await zcio_asyncio.sock_sendfile(blocking, f)
    finally:
        blocking.close()


async def test_fallback_false_raises_sendfile_not_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zcio._knowledge import ENV, KNOWLEDGE

    monkeypatch.setenv(ENV, "sendfile")
    KNOWLEDGE.reset()
    path = file_of(tmp_path, DATA)
    a, b = socket.socketpair()
    a.setblocking(False)
    try:
        with open(path, "rb") as f:
            with pytest.raises(asyncio.SendfileNotAvailableError):
                await zcio_asyncio.sock_sendfile(a, f, fallback=False)
            assert f.tell() == 0  # nothing moved
    finally:
        a.close()
        b.close()


async def test_loop_sendfile_contract_on_a_transport(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    transport = writer.transport
    try:
        writer.write(b"headers\r\n\r\n")  # buffered or not: it must arrive first
        with open(path, "rb") as f:
            before = zcio.stats()
            assert await zcio_asyncio.sendfile(transport, f, 7, 1_000_000) == 1_000_000
            assert f.tell() == 1_000_007
            delta = zcio.stats() - before
        writer.write(b"after")
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    assert rx.result() == b"headers\r\n\r\n" + DATA[7:1_000_007] + b"after"
    assert delta.bytes(native_method(mode)) == 1_000_000
    with pytest.raises(RuntimeError, match="closing"), open(path, "rb") as f:
        await zcio_asyncio.sendfile(transport, f)


async def test_loop_sendfile_on_tls_transport(tmp_path: Path) -> None:
    tls = tls_contexts()
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock, tls=tls.server).start()
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls.client, server_hostname="localhost"
    )
    try:
        with open(path, "rb") as f:
            with pytest.raises(RuntimeError, match="fallback is disabled"):
                await zcio_asyncio.sendfile(writer.transport, f, fallback=False)
            assert await zcio_asyncio.sendfile(writer.transport, f) == len(DATA)
    finally:
        writer.close()
        await writer.wait_closed()
    assert sha(rx.result()) == sha(DATA)


async def test_relay_both_ways_with_half_close(mode: str) -> None:
    request, response = make_data(900_000, seed=52), make_data(1_300_000, seed=53)
    upstream_sock, upstream_port = tcp_listener()
    seen: dict[str, bytes] = {}
    answer_after_eof(upstream_sock, response, seen)
    done = asyncio.Event()
    counts: list[tuple[int, int]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up = await asyncio.open_connection("127.0.0.1", upstream_port)
        try:
            counts.append(await zcio_asyncio.relay((reader, writer), up))
        finally:
            writer.close()
            up[1].close()
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    def client() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as c:
            c.sendall(request)
            c.shutdown(socket.SHUT_WR)
            got = bytearray()
            while chunk := c.recv(1 << 16):
                got += chunk
            seen["response"] = bytes(got)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    async with server:
        await asyncio.wait_for(done.wait(), 20)
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 20)
    assert seen == {"request": request, "response": response}
    assert counts == [(len(request), len(response))]
    await server.wait_closed()


async def test_quick_path_forgets_transports_that_die(tmp_path: Path) -> None:
    """The quick path remembers what it learnt about each transport (by id, for speed) and
    forgets it when the transport dies, so a new object given the same id is never taken for
    it; every small send still goes out by sendfile."""
    import gc
    import weakref

    from zcio._adapters import _small

    path = file_of(tmp_path, DATA[:4096])
    loop = asyncio.get_running_loop()
    ids = []
    for _ in range(3):
        listener, port = tcp_listener()
        with listener:
            client = socket.create_connection(("127.0.0.1", port))
            server, _ = listener.accept()
        with client:
            transport, _protocol = await loop.connect_accepted_socket(asyncio.Protocol, server)
            before = zcio.stats()
            with open(path, "rb", buffering=0) as f:
                assert await zcio.send_file(transport, f, count=4096) == 4096
            assert (zcio.stats() - before).bytes("sendfile") == 4096
            client.settimeout(5)
            assert client.recv(8192, socket.MSG_WAITALL) == DATA[:4096]
            ids.append(id(transport))
            assert id(transport) in _small._cache
            alive = weakref.ref(transport)
            transport.close()
            del transport, _protocol
        for _ in range(100):  # the loop lets go of a closed transport within a few iterations
            gc.collect()
            if alive() is None:
                break
            await asyncio.sleep(0.01)
        assert alive() is None
        assert ids[-1] not in _small._cache
