"""zcio_trio: trio's own stream conformance checks, plus send_file and splice_from."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import zcio
import zcio_trio
from _support import Receiver, file_of, make_data, sha, tcp_listener, tls_contexts
from zcio._knowledge import ENV, KNOWLEDGE

pytestmark = pytest.mark.anyio

DATA = make_data(2 * 1024 * 1024 + 9, seed=41)


@pytest.fixture(params=["native", "fallback"])
def anyio_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """This module is trio's: one backend, native and forced fallback."""
    if request.param == "fallback":
        monkeypatch.setenv(ENV, "all")
    KNOWLEDGE.reset()
    return ("trio", {})


async def socket_pair() -> tuple[zcio_trio.ZeroCopySocketStream, zcio_trio.ZeroCopySocketStream]:
    a, b = trio.socket.socketpair()
    return (
        zcio_trio.ZeroCopySocketStream(trio.SocketStream(a)),
        zcio_trio.ZeroCopySocketStream(trio.SocketStream(b)),
    )


async def clog(stream: zcio_trio.ZeroCopySocketStream) -> None:
    """Send until the kernel takes no more, then stop there."""
    async with trio.open_nursery() as nursery:

        async def flood() -> None:
            while True:
                await stream.send_all(b"x" * 10000)

        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def clogged_pair() -> tuple[zcio_trio.ZeroCopySocketStream, zcio_trio.ZeroCopySocketStream]:
    left, right = await socket_pair()
    await clog(left)
    await clog(right)
    return left, right


async def test_trio_half_closeable_stream_conformance() -> None:
    await trio.testing.check_half_closeable_stream(socket_pair, clogged_pair)


async def test_trio_two_way_stream_conformance_over_tls() -> None:
    tls = tls_contexts()

    async def tls_pair() -> tuple[zcio_trio.ZeroCopyStream, zcio_trio.ZeroCopyStream]:
        a, b = await socket_pair()
        client = trio.SSLStream(a.transport_stream, tls.client, server_hostname="localhost")
        server = trio.SSLStream(b.transport_stream, tls.server, server_side=True)
        return zcio_trio.wrap(client), zcio_trio.wrap(server)

    await trio.testing.check_two_way_stream(tls_pair, None)


async def test_send_file_and_exact_count_after_cancel(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    async with await zcio_trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(b"head")
        before = zcio.stats()
        assert await stream.send_file(path, offset=1, count=1000) == 1000
        progress = zcio.Progress()
        with trio.move_on_after(0.001):
            await stream.send_file(path, progress=progress)
        await stream.send_all(b"tail")  # still usable after a cancelled send_file
        delta = zcio.stats() - before
    got = rx.result()
    assert got == b"head" + DATA[1:1001] + DATA[: progress.sent] + b"tail"
    zero_copy = not KNOWLEDGE.disabled()
    method = "sendfile" if zero_copy else "userspace"
    assert delta.bytes(method) == 1000 + progress.sent


async def test_splice_from_another_stream() -> None:
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    feeder, source = await socket_pair()
    async with source, await zcio_trio.open_tcp_stream("127.0.0.1", port) as stream:
        async with trio.open_nursery() as nursery:

            async def feed() -> None:
                await feeder.send_all(DATA)
                await feeder.send_eof()

            nursery.start_soon(feed)
            assert await stream.splice_from(source) == len(DATA)
        await feeder.aclose()
    assert sha(rx.result()) == sha(DATA)


async def test_tls_stream_uses_the_fallback(tmp_path: Path) -> None:
    tls = tls_contexts()
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    rx = Receiver(lsock, tls=tls.server).start()
    raw = await trio.open_tcp_stream("127.0.0.1", port)
    stream = zcio_trio.wrap(trio.SSLStream(raw, tls.client, server_hostname="localhost"))
    assert not isinstance(stream, zcio_trio.ZeroCopySocketStream)
    async with stream:
        before = zcio.stats()
        assert await stream.send_file(path) == len(DATA)
        assert (zcio.stats() - before).bytes("userspace") == len(DATA)
    assert sha(rx.result()) == sha(DATA)


async def test_errors_are_trio_errors(tmp_path: Path) -> None:
    path = file_of(tmp_path, make_data(16 * 1024 * 1024, seed=2))
    lsock, port = tcp_listener(rcvbuf=32 * 1024)
    rx = Receiver(lsock, stop_after=100_000).start()
    stream = await zcio_trio.open_tcp_stream("127.0.0.1", port)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
    with trio.fail_after(10), pytest.raises(trio.BrokenResourceError) as info:
        await stream.send_file(path)
    assert isinstance(info.value, zcio.BrokenDestination)
    assert info.value.sent >= 100_000
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_file(path)
    rx.result()


async def test_serve_tcp_hands_over_wrapped_streams(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)

    async def handler(stream: zcio_trio.ZeroCopySocketStream) -> None:
        async with stream:
            await stream.send_file(path)

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(zcio_trio.serve_tcp, handler, 0)
        port = listeners[0].socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        got = bytearray()
        async with client:
            while chunk := await client.receive_some():
                got += chunk
        nursery.cancel_scope.cancel()
    assert sha(bytes(got)) == sha(DATA)
    with pytest.raises(TypeError, match="SocketStream"):
        zcio_trio.ZeroCopySocketStream(trio.testing.MemorySendStream())  # type: ignore[arg-type]
