"""A file that is not in the page cache: the event loop starts none of its disk reads.

Linux counts each disk read against the thread that started it (``read_bytes`` in
``/proc/thread-self/io``, counted when the request is queued). Reading a page the kernel
marked for readahead starts the next readahead window from the reading thread, even a read
told not to wait (``RWF_NOWAIT``): zcio's probes and sendfiles on the event loop used to start
nearly every disk read of a cold file, on the loop (issue 25: the cold-file lag). These tests
send a cold file and check which thread started its disk reads: none on the loop's thread, and
the process as a whole did read the disk (so the file really was cold). Nothing is timed.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import anyio
import pytest

import zcio
from _support import Receiver, file_of, make_data, sha
from zcio._syscalls import in_cache

pytestmark = pytest.mark.anyio

MIB = 1 << 20
#: A few readahead windows (128 KiB by default, 8 MiB on some virtual disks), several slices.
SIZE = 24 * MIB
DATA = make_data(SIZE, seed=25)


def _disk_reads(where: str) -> int:
    """``read_bytes`` of ``/proc/<where>/io``: bytes of disk reads the thread or process
    started."""
    with open(f"/proc/{where}/io") as f:
        for line in f:
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    raise AssertionError(f"no read_bytes in /proc/{where}/io")


def _cold_file(tmp_path: Path, data: bytes) -> str:
    """Write the file, then drop it from the page cache; skip where that cannot be seen."""
    if not os.path.exists("/proc/thread-self/io"):
        pytest.skip("no per-thread I/O accounting (/proc/thread-self/io)")
    path = file_of(tmp_path, data)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        cached = in_cache(fd, 0, min(len(data), 2 * MIB))  # cachestat(2): starts no read
    finally:
        os.close(fd)
    if cached is None:
        pytest.skip("no cachestat(2) (Linux 6.5+): cannot check the file left the page cache")
    if cached:
        pytest.skip("this filesystem would not drop the file from the page cache")
    return path


@pytest.mark.parametrize("size", [SIZE, 64 << 10])
async def test_loop_thread_starts_no_disk_read(mode: str, size: int, tmp_path: Path) -> None:
    """Native (sendfile) and forced fallback (user-space copy), a file of several slices and
    one of a single slice: the worker threads start every disk read, the loop's thread none,
    and the bytes arrive whole. (Not a file of one or two pages: ``_syscalls.cached`` probes
    those with ``RWF_NOWAIT`` reads alone, which start their read on the loop.)"""
    data = DATA[:size]
    path = _cold_file(tmp_path, data)
    # What the first worker-thread call of a loop imports and starts is done before counting:
    # a module file read from the disk then would count as the loop's.
    await anyio.to_thread.run_sync(int)
    a, b = socket.socketpair()
    a.setblocking(False)
    rx = Receiver(b, accept=False).start()
    process_before = _disk_reads("self")
    loop_before = _disk_reads("thread-self")  # this coroutine runs on the loop's thread
    try:
        before = zcio.stats()
        n = await zcio.send_file(a, path)
        delta = zcio.stats() - before
        loop_reads = _disk_reads("thread-self") - loop_before
        process_reads = _disk_reads("self") - process_before
    finally:
        a.close()
    assert n == size
    assert sha(rx.result()) == sha(data)
    method = "sendfile" if mode == "native" else "userspace"
    assert delta.bytes(method) == size
    assert delta.methods[method].offloaded >= 1
    assert process_reads >= size // 2, "the file was not read from the disk: not cold"
    assert loop_reads == 0, f"the event loop's thread started {loop_reads} bytes of disk reads"
