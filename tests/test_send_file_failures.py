"""send_file when things go wrong: shrinking files, vanishing peers, cancellation, contention,
and arguments that are wrong. Nothing may be lost, duplicated, leaked or left hanging."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

import zcio
from _support import (
    Receiver,
    backend,
    destination,
    file_of,
    make_data,
    sha,
    small_send_buffer,
    tcp_listener,
)

pytestmark = pytest.mark.anyio

DATA = make_data(8 * 1024 * 1024)


def slow_pair(gate: threading.Event) -> tuple[socket.socket, Receiver]:
    """A non-blocking sender with small buffers and a receiver that waits for ``gate``."""
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    a.setblocking(False)
    return a, Receiver(b, accept=False, start_gate=gate).start()


async def wait_for(predicate: Any, what: str) -> None:
    with anyio.fail_after(10, shield=False):
        while not predicate():
            await anyio.sleep(0.005)


async def test_file_shrinks_with_count_raises_incomplete(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    gate = threading.Event()
    a, rx = slow_pair(gate)
    progress = zcio.Progress()
    error: list[BaseException] = []

    async def send() -> None:
        try:
            await zcio.send_file(a, path, count=len(DATA), progress=progress)
        except zcio.IncompleteTransfer as exc:
            error.append(exc)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await wait_for(lambda: progress.sent > 0, "first bytes")
            os.truncate(path, 1_000_000)  # more than fits in the small socket buffers
            gate.set()
    finally:
        a.close()
    assert len(error) == 1
    exc = error[0]
    assert isinstance(exc, zcio.IncompleteTransfer)
    assert exc.sent == 1_000_000 == progress.sent
    assert exc.expected == len(DATA)
    assert rx.result() == DATA[:1_000_000]


async def test_file_shrinks_without_count_stops_quietly(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    gate = threading.Event()
    a, rx = slow_pair(gate)
    progress = zcio.Progress()
    result: list[int] = []

    async def send() -> None:
        result.append(await zcio.send_file(a, path, progress=progress))

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(send)
            await wait_for(lambda: progress.sent > 0, "first bytes")
            os.truncate(path, 700_000)
            gate.set()
    finally:
        a.close()
    assert result == [700_000]
    assert rx.result() == DATA[:700_000]


@pytest.mark.parametrize("flavour", ["socket", "anyio"])
async def test_peer_resets_mid_transfer(flavour: str, mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener(rcvbuf=32 * 1024)
    rx = Receiver(lsock, stop_after=300_000).start()
    progress = zcio.Progress()
    async with destination(flavour, port) as dst:
        small_send_buffer(dst)  # so that DATA cannot all fit in buffers before the reset
        with anyio.fail_after(15), pytest.raises(zcio.BrokenDestination) as info:
            await zcio.send_file(dst, path, progress=progress)
    assert isinstance(info.value, anyio.BrokenResourceError)
    assert isinstance(info.value.__cause__, OSError | anyio.BrokenResourceError)
    assert info.value.sent == progress.sent
    assert 300_000 <= progress.sent < len(DATA)
    assert rx.result() == DATA[: len(rx.result())]


async def test_destination_closed_before_start(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    a, b = socket.socketpair()
    a.close()
    b.close()
    with pytest.raises(zcio.ClosedDestination) as info:
        await zcio.send_file(a, path)
    assert info.value.sent == 0
    assert isinstance(info.value, anyio.ClosedResourceError)


@pytest.mark.parametrize("seed", range(6))
async def test_cancel_at_random_points_accounts_every_byte(
    seed: int, mode: str, tmp_path: Path
) -> None:
    path = file_of(tmp_path, DATA)
    rng = random.Random(seed)
    a, b = socket.socketpair()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rng.choice([16, 64, 256]) * 1024)
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    progress = zcio.Progress()
    try:
        with anyio.move_on_after(rng.uniform(0.0, 0.02)):
            await zcio.send_file(a, path, progress=progress)
    finally:
        a.close()
    received = rx.result()
    # Exactly what Progress says reached the socket, and in order: nothing lost or doubled.
    assert len(received) == progress.sent
    assert received == DATA[: progress.sent]


async def test_cancel_leaves_file_object_at_offset_plus_sent(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    gate = threading.Event()
    a, rx = slow_pair(gate)
    progress = zcio.Progress()
    try:
        with open(path, "rb") as f:
            with anyio.move_on_after(0.05):
                await zcio.send_file(a, f, offset=100, progress=progress)
            assert 0 < progress.sent < len(DATA) - 100
            assert f.tell() == 100 + progress.sent
    finally:
        gate.set()
        a.close()
    assert rx.result() == DATA[100 : 100 + progress.sent]


async def test_second_sender_is_refused_not_interleaved(mode: str, tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    gate = threading.Event()
    a, rx = slow_pair(gate)
    progress = zcio.Progress()
    try:
        async with anyio.create_task_group() as tg:

            async def first() -> None:
                await zcio.send_file(a, path, progress=progress)

            tg.start_soon(first)
            await wait_for(lambda: progress.sent > 0, "first sender started")
            with pytest.raises(zcio.BusyError):
                await zcio.send_file(a, path)
            # The same socket through another fd is the same destination.
            dup = socket.socket(fileno=os.dup(a.fileno()))
            try:
                with pytest.raises(zcio.BusyError):
                    await zcio.send_file(dup, path)
            finally:
                dup.close()
            gate.set()
    finally:
        a.close()
    assert sha(rx.result()) == sha(DATA)


async def test_writer_write_is_refused_during_send(tmp_path: Path) -> None:
    if backend() == "trio":
        pytest.skip("asyncio streams need an asyncio loop")
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    gate = threading.Event()
    rx = Receiver(lsock, start_gate=gate).start()
    progress = zcio.Progress()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with anyio.create_task_group() as tg:

            async def send() -> None:
                await zcio.send_file(writer, path, progress=progress)

            tg.start_soon(send)
            await wait_for(lambda: progress.sent > 0, "send started")
            with pytest.raises(RuntimeError, match="zero-copy send is in progress"):
                writer.write(b"interleaved")
            gate.set()
        writer.write(b"after")  # usable again
        await writer.drain()
    finally:
        writer.close()
        await writer.wait_closed()
    assert sha(rx.result()) == sha(DATA + b"after")


async def test_anyio_send_is_refused_during_send(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener()
    gate = threading.Event()
    rx = Receiver(lsock, start_gate=gate).start()
    progress = zcio.Progress()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        async with anyio.create_task_group() as tg:

            async def send() -> None:
                await zcio.send_file(stream, path, progress=progress)

            tg.start_soon(send)
            await wait_for(lambda: progress.sent > 0, "send started")
            with pytest.raises(anyio.BusyResourceError):
                await stream.send(b"interleaved")
            gate.set()
        await stream.send(b"after")
    assert sha(rx.result()) == sha(DATA + b"after")


async def test_wrong_arguments_are_refused_before_anything_moves(tmp_path: Path) -> None:
    path = file_of(tmp_path, DATA)
    a, b = socket.socketpair()
    a.setblocking(False)
    r, w = os.pipe()
    wo = os.open(path, os.O_WRONLY)
    ro_out = os.open(tmp_path / "ro", os.O_RDONLY | os.O_CREAT)
    try:
        bad_ranges: list[tuple[Any, Any, type[Exception]]] = [
            (-1, None, ValueError),
            (1.5, None, TypeError),
            (True, None, TypeError),
            (0, -1, ValueError),
            (0, "10", TypeError),
        ]
        for offset, count, exc in bad_ranges:
            with pytest.raises(exc):
                await zcio.send_file(a, path, offset=offset, count=count)
        with pytest.raises(ValueError, match="regular file"):
            await zcio.send_file(a, str(tmp_path))  # a directory
        with pytest.raises(ValueError, match="regular file"):
            await zcio.send_file(a, r)  # a pipe
        os.mkfifo(tmp_path / "fifo")
        with anyio.fail_after(5), pytest.raises(ValueError, match="regular file"):
            await zcio.send_file(a, tmp_path / "fifo")  # no writer: opening must not hang
        with pytest.raises(ValueError, match="not open for reading"):
            await zcio.send_file(a, wo)
        with pytest.raises(TypeError, match="regular file"):
            await zcio.send_file(a, b)  # a socket as the source
        with pytest.raises(TypeError, match="binary mode"), open(path) as text:
            await zcio.send_file(a, text)
        with pytest.raises(FileNotFoundError):
            await zcio.send_file(a, tmp_path / "missing")
        with pytest.raises(TypeError, match="not a path"):
            await zcio.send_file(str(tmp_path / "out"), path)
        with pytest.raises(TypeError):
            await zcio.send_file(3.5, path)
        with pytest.raises(ValueError, match="not open for writing"):
            await zcio.send_file(ro_out, path)
        b.setblocking(True)
        with pytest.raises(ValueError, match="non-blocking"):
            await zcio.send_file(b, path)
    finally:
        for fd in (r, w, wo, ro_out):
            os.close(fd)
        a.close()
        b.close()


async def test_writer_closed_by_another_task_ends_the_send(tmp_path: Path) -> None:
    """zcio waits on a dup of the transport's socket; closing the transport must still end it."""
    if backend() == "trio":
        pytest.skip("asyncio streams need an asyncio loop")
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener(rcvbuf=32 * 1024)
    gate = threading.Event()
    rx = Receiver(lsock, start_gate=gate).start()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    small_send_buffer(writer.transport.get_extra_info("socket"))
    progress = zcio.Progress()
    try:
        async with anyio.create_task_group() as tg:

            async def close_soon() -> None:
                await wait_for(lambda: progress.sent > 0, "send started")
                await anyio.sleep(0.1)
                writer.close()

            tg.start_soon(close_soon)
            with anyio.fail_after(5), pytest.raises(zcio.ClosedDestination) as info:
                await zcio.send_file(writer, path, progress=progress)
    finally:
        gate.set()
        writer.close()
    assert info.value.sent == progress.sent
    got = rx.result()
    assert got == DATA[: len(got)]


async def test_anyio_stream_closed_by_another_task_during_send(tmp_path: Path) -> None:
    """anyio's contract: closing a stream that another task sends on ends that send with
    ClosedResourceError (on both anyio backends)."""
    path = file_of(tmp_path, DATA)
    lsock, port = tcp_listener(rcvbuf=32 * 1024)
    gate = threading.Event()
    rx = Receiver(lsock, start_gate=gate).start()
    progress = zcio.Progress()
    stream = await anyio.connect_tcp("127.0.0.1", port)
    small_send_buffer(stream)
    try:
        async with anyio.create_task_group() as tg:

            async def close_soon() -> None:
                await wait_for(lambda: progress.sent > 0, "send started")
                await stream.aclose()

            tg.start_soon(close_soon)
            with anyio.fail_after(5), pytest.raises(anyio.ClosedResourceError) as info:
                await zcio.send_file(stream, path, progress=progress)
    finally:
        gate.set()
        await stream.aclose()
    assert isinstance(info.value, zcio.ClosedDestination)
    assert info.value.sent == progress.sent
    got = rx.result()
    assert got == DATA[: len(got)]
