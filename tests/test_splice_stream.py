"""splice_stream and copy between streams: every source and destination flavour, every backend,
native and forced fallback, with hashes of what arrived and counters of what moved it."""

from __future__ import annotations

import errno
import os
import random
import socket
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import zcio
import zcio._pipes as zcio_pipes
from _support import (
    FLAVOURS,
    SOURCES,
    Receiver,
    Sender,
    answer_after_eof,
    backend,
    destination,
    file_of,
    make_data,
    pipe_destination,
    sha,
    skip_unsupported,
    skip_unsupported_source,
    small_send_buffer,
    source,
    tcp_listener,
)

pytestmark = pytest.mark.anyio

DATA = make_data(3 * 1024 * 1024 + 11, seed=3)
READ_AHEAD = {"anyio": 10, "reader": 10}


def assert_spliced(delta: zcio.Stats, mode: str, n: int, buffered: int = 0) -> None:
    if mode == "native":
        assert delta.bytes("splice") == n - buffered, delta
        assert delta.bytes("userspace") == buffered, delta
        assert not delta.fallbacks, delta
    else:
        assert delta.bytes("splice") == 0, delta
        assert delta.bytes("userspace") == n, delta
        assert delta.fallbacks.get("disabled") == 1, delta


@pytest.mark.parametrize("dst_flavour", [*FLAVOURS, "pipe"])
@pytest.mark.parametrize("src_flavour", SOURCES)
async def test_relay_every_pair(src_flavour: str, dst_flavour: str, mode: str) -> None:
    skip_unsupported_source(src_flavour)
    if dst_flavour != "pipe":
        skip_unsupported(dst_flavour)
    ahead = READ_AHEAD.get(src_flavour, 0)
    if dst_flavour == "pipe":
        async with (
            source(src_flavour, DATA, read_ahead=ahead) as src,
            pipe_destination() as (
                w,
                result,
            ),
        ):
            before = zcio.stats()
            n = await zcio.splice_stream(src, w)
            delta = zcio.stats() - before
            got = result()
    else:
        lsock, port = tcp_listener()
        rx = Receiver(lsock).start()
        async with (
            source(src_flavour, DATA, read_ahead=ahead) as src,
            destination(dst_flavour, port) as dst,
        ):
            before = zcio.stats()
            n = await zcio.splice_stream(src, dst)
            delta = zcio.stats() - before
        got = rx.result()
    assert n == len(DATA) - ahead
    assert sha(got) == sha(DATA[ahead:])
    # Whatever the wrapper had read ahead went through user space, first; the rest by splice.
    buffered = delta.bytes("userspace") if mode == "native" else 0
    assert buffered <= (1 << 20 if ahead else 0)
    assert_spliced(delta, mode, n, buffered)


@pytest.mark.parametrize("src_flavour", ["anyio", "reader"])
async def test_stream_usable_after_splice_with_count(src_flavour: str, mode: str) -> None:
    skip_unsupported_source(src_flavour)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        async with source(src_flavour, DATA, read_ahead=7) as src:
            n = await zcio.splice_stream(src, a, count=1_000_000)
            # The rest is still readable through the wrapper, in order: nothing read twice.
            rest = bytearray()
            if src_flavour == "anyio":
                async for chunk in src:
                    rest += chunk
            else:
                rest += await src.read()
    finally:
        a.close()
    assert n == 1_000_000
    assert rx.result() == DATA[7:1_000_007]
    assert bytes(rest) == DATA[1_000_007:]


async def test_copy_file_to_socket_and_file_positions(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)
        assert await zcio.copy(fd, a, count=1000) == 1000
        assert os.lseek(fd, 0, os.SEEK_CUR) == 1100  # like read(): the position moved
        with open(path, "rb") as f:
            f.seek(2000)
            assert await zcio.copy(f, a) == len(DATA) - 2000
            assert f.tell() == len(DATA)
    finally:
        os.close(fd)
        a.close()
    assert rx.result() == DATA[100:1100] + DATA[2000:]


async def test_copy_picks_the_plan(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        before = zcio.stats()
        await zcio.copy(path, f)
        delta = zcio.stats() - before
    assert out.read_bytes() == DATA
    expected = zcio.plan(path, out).method
    assert expected is (zcio.Method.COPY_FILE_RANGE if mode == "native" else zcio.Method.USERSPACE)
    assert delta.bytes(expected) == len(DATA)


async def test_full_duplex_proxy_with_half_close(mode: str) -> None:
    """client -> proxy -> server and back; EOF on one direction does not stop the other."""
    request, response = make_data(700_000, seed=11), make_data(900_000, seed=12)
    server_sock, server_port = tcp_listener()
    seen: dict[str, bytes] = {}
    answer_after_eof(server_sock, response, seen)
    # create_tcp_listener, not SocketListener.from_socket: that needs anyio >= 4.10.
    (listener,) = (await anyio.create_tcp_listener(local_host="127.0.0.1")).listeners
    assert isinstance(listener, anyio.abc.SocketListener)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

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
    async with listener:
        downstream = await listener.accept()
    async with downstream, await anyio.connect_tcp("127.0.0.1", server_port) as upstream:

        async def pipe(a: Any, b: Any) -> None:
            await zcio.splice_stream(a, b)
            await b.send_eof()

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pipe, downstream, upstream)
                tg.start_soon(pipe, upstream, downstream)
    await anyio.to_thread.run_sync(thread.join, 20)
    assert seen["request"] == request
    assert seen["response"] == response


@pytest.mark.parametrize("seed", range(5))
async def test_cancel_at_random_points_loses_and_repeats_nothing(seed: int, mode: str) -> None:
    rng = random.Random(seed)
    lsock, port = tcp_listener()
    sender = Sender(lsock, DATA).start()
    a, b = socket.socketpair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rng.choice([16, 64, 256]) * 1024)
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    progress = zcio.Progress()
    async with await anyio.connect_tcp("127.0.0.1", port) as src:
        try:
            with anyio.move_on_after(rng.uniform(0.0, 0.03)):
                await zcio.splice_stream(src, a, progress=progress)
        finally:
            a.close()
        rest = bytearray()
        async for chunk in src:
            rest += chunk
    sender.join()
    received = rx.result()
    assert received == DATA[: progress.sent]
    assert progress.taken == progress.sent + progress.stranded
    assert progress.stranded == 0  # the destination was reading: the pipe was flushed
    assert bytes(rest) == DATA[progress.taken :]


async def test_stranded_bytes_are_reported_and_the_pipe_not_reused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import zcio._job as job_module
    import zcio._stream_loops as loops

    monkeypatch.setattr(loops, "STRANDED_FLUSH", 0.05)
    monkeypatch.setattr(job_module, "STRANDED_FLUSH", 0.05)
    pool = zcio.PipePool(limit=2, size=64 * 1024)
    lsock, port = tcp_listener()
    sender = Sender(lsock, DATA).start()
    a, b = socket.socketpair()  # nobody reads b: everything piles up
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    a.setblocking(False)
    progress = zcio.Progress()
    try:
        async with await anyio.connect_tcp("127.0.0.1", port) as src:
            with anyio.move_on_after(0.3):
                await zcio.splice_stream(src, a, progress=progress, pool=pool)
    finally:
        a.close()
        b.close()
        sender.join()
    assert progress.stranded > 0
    assert progress.taken == progress.sent + progress.stranded
    assert pool.busy == 0
    assert pool.idle == 0  # closed, not pooled
    pool.clear()


@pytest.mark.parametrize("why", ["pool at its limit", "process out of fds"])
async def test_no_pipe_to_be_had_falls_back_to_user_space(
    why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if why == "pool at its limit":
        pool = zcio.PipePool(limit=0)
    else:

        def no_fds(size: int) -> None:
            raise OSError(errno.EMFILE, "Too many open files")

        pool = zcio.PipePool()
        monkeypatch.setattr(zcio_pipes, "Pipe", no_fds)
    lsock, port = tcp_listener()
    rx = Receiver(lsock).start()
    async with source("socket", DATA) as src, destination("anyio", port) as dst:
        before = zcio.stats()
        assert await zcio.splice_stream(src, dst, pool=pool) == len(DATA)
        delta = zcio.stats() - before
    assert sha(rx.result()) == sha(DATA)
    assert delta.fallbacks == {"no_pipe": 1}
    assert delta.bytes("userspace") == len(DATA)
    assert pool.busy == 0


async def test_pipes_are_reused() -> None:
    pool = zcio.PipePool(limit=4, size=256 * 1024)
    for _ in range(3):
        a, b = socket.socketpair()
        a.setblocking(False)
        rx = Receiver(b, accept=False).start()
        async with source("socket", DATA[:100_000]) as src:
            await zcio.splice_stream(src, a, pool=pool)
        a.close()
        assert rx.result() == DATA[:100_000]
        assert pool.idle == 1
        assert pool.busy == 0
    pool.clear()


async def test_source_reset_gives_broken_source(mode: str) -> None:
    lsock, port = tcp_listener()
    sender = Sender(lsock, DATA, reset_after=500_000).start()
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    progress = zcio.Progress()
    try:
        async with await anyio.connect_tcp("127.0.0.1", port) as src:
            with anyio.fail_after(15), pytest.raises(zcio.BrokenSource) as info:
                await zcio.splice_stream(src, a, progress=progress)
    finally:
        a.close()
        sender.join()
    assert isinstance(info.value, anyio.BrokenResourceError)
    assert info.value.sent == progress.sent
    got = rx.result()
    assert got == DATA[: len(got)]
    assert len(got) == progress.sent


async def test_destination_reset_gives_broken_destination(mode: str) -> None:
    lsock, port = tcp_listener(rcvbuf=32 * 1024)
    rx = Receiver(lsock, stop_after=200_000).start()
    progress = zcio.Progress()
    async with source("socket", DATA) as src, destination("socket", port) as dst:
        small_send_buffer(dst)  # so that DATA cannot all fit in buffers before the reset
        with anyio.fail_after(15), pytest.raises(zcio.BrokenDestination) as info:
            await zcio.splice_stream(src, dst, progress=progress)
    assert info.value.sent == progress.sent
    assert info.value.taken == progress.taken
    rx.result()


async def test_splice_count_beyond_eof_is_incomplete(mode: str) -> None:
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    try:
        async with source("socket", DATA[:1000]) as src:
            with pytest.raises(zcio.IncompleteTransfer) as info:
                await zcio.splice_stream(src, a, count=5000)
    finally:
        a.close()
    assert info.value.sent == 1000
    assert rx.result() == DATA[:1000]


async def test_tls_source_and_datagram_destination_use_user_space(mode: str) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.settimeout(10)
    got = bytearray()
    data = DATA[:200_000]

    def drain() -> None:
        while len(got) < len(data):
            got.extend(b.recv(1 << 17))

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        async with source("socket", data) as src:
            before = zcio.stats()
            assert await zcio.splice_stream(src, a) == len(data)
            delta = zcio.stats() - before
        thread.join(10)
    finally:
        a.close()
        b.close()
    assert bytes(got) == data
    assert delta.bytes("userspace") == len(data)


async def test_wrong_arguments() -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        with pytest.raises(TypeError, match="expected a file descriptor"):
            await zcio.splice_stream(object(), a)
        with pytest.raises(ValueError, match="non-blocking"):
            await zcio.splice_stream(b, a)
        with pytest.raises(ValueError, match=">= 0"):
            await zcio.splice_stream(a, a, count=-1)
        c = socket.socket()
        c.close()
        with pytest.raises(zcio.ClosedSource):
            await zcio.splice_stream(c, a)
    finally:
        a.close()
        b.close()


async def test_transport_closed_by_another_task_ends_the_wait() -> None:
    """A transport closed while zcio waits on its socket (through a dup) must not hang."""
    if backend() == "trio":
        pytest.skip("asyncio streams need an asyncio loop")
    import asyncio

    hold = threading.Event()
    lsock, port = tcp_listener()
    sender = Sender(lsock, DATA[:1000], hold=hold).start()  # sends, then goes quiet
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with anyio.create_task_group() as tg:

            async def close_soon() -> None:
                await anyio.sleep(0.2)
                writer.close()

            tg.start_soon(close_soon)
            with anyio.fail_after(5), pytest.raises(zcio.ClosedSource):
                await zcio.splice_stream(reader, a)
    finally:
        hold.set()
        a.close()
        sender.join()
    assert rx.result() == DATA[:1000]
