"""What a transfer claims (docs/design.md, "Claims"): ordered streams (sockets, pipes, FIFOs)
by inode, whatever fd reaches them; a regular file by its fd; a character device never.

Each test holds one transfer open on a destination that does not drain (a pipe nobody reads
yet), then starts a second one, on asyncio, uvloop and trio.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import zcio
from _support import make_data, sha

pytestmark = pytest.mark.anyio

DATA = make_data(4 << 20, 9)


def _pipe() -> tuple[int, int]:
    return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)


async def _until(check: Callable[[], bool]) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.005)


async def test_many_transfers_into_dev_null_at_once(mode: str) -> None:
    """Every /dev/null fd is the same inode; a device is never claimed, so 16 relays that
    each splice into their own /dev/null fd all run (the proxy's mirror answers do this)."""
    sources = [_pipe() for _ in range(16)]
    nulls = [os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC) for _ in sources]
    try:
        async with anyio.create_task_group() as tg:
            for (r, _), null in zip(sources, nulls, strict=True):
                tg.start_soon(zcio.splice_stream, r, null)
            for _, w in sources:
                os.write(w, b"x" * 1000)
                os.close(w)
    finally:
        for r, _ in sources:
            os.close(r)
        for null in nulls:
            os.close(null)


async def test_a_pipe_is_claimed_through_any_of_its_fds(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    r, w = _pipe()
    dup = os.dup(w)
    progress = zcio.Progress()
    got = bytearray()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: zcio.send_file(w, path, progress=progress))
            await _until(lambda: progress.sent > 0)  # the pipe is full: the sender waits
            with pytest.raises(zcio.BusyError):
                await zcio.send_file(dup, path)
            while len(got) < len(DATA):
                await anyio.wait_readable(r)
                got += os.read(r, 1 << 20)
    finally:
        for fd in (r, w, dup):
            os.close(fd)
    assert sha(bytes(got)) == sha(DATA)


async def test_a_regular_file_is_claimed_by_fd(tmp_path: Path) -> None:
    """Two fds of one file each write at their own position: they do not refuse each other.
    The same fd twice would interleave at one position: refused."""
    src = tmp_path / "src"
    src.write_bytes(DATA)
    dst = tmp_path / "dst"
    dst.write_bytes(b"")
    r, w = _pipe()  # a source that holds the first transfer open until we write
    with open(dst, "r+b") as first, open(dst, "r+b") as second:
        second.seek(len(DATA))
        progress = zcio.Progress()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: zcio.copy(r, first, count=3, progress=progress))
            await anyio.sleep(0.05)
            with pytest.raises(zcio.BusyError):
                await zcio.send_file(first, src)
            assert await zcio.send_file(second, src) == len(DATA)
            os.write(w, b"abc")
    os.close(r)
    os.close(w)
    assert dst.read_bytes()[:3] == b"abc"
    assert sha(dst.read_bytes()[len(DATA) :]) == sha(DATA)
