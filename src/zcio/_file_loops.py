"""Transfer loops whose source is a regular file: sendfile, copy_file_range, user space.

The event loop never waits on a disk here, nor starts a disk read (but for a slice of one or
two pages that is not cached, which ``_syscalls.cached`` probes by reading it):
``_syscalls.cached`` decides per slice whether the file's pages are in the page cache, slices
that are not go to a worker thread, and so do the slices after them until the pages ahead are
all cached (:class:`Warmth`); copies into regular files always run in worker threads.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import anyio

from ._constants import COLD_LOOKAHEAD, DATAGRAM_CHUNK, FILE_CHUNK, SENDFILE_CHUNK, USER_CHUNK
from ._job import Job, deliver
from ._kinds import Kind, Method
from ._knowledge import Refusal
from ._syscalls import at_end, cached, in_cache, read_nowait

__all__ = ["Warmth", "file_runners", "userspace_from_file"]


class Warmth:
    """Whether the event loop may read a file's next slice itself, or leave it to a thread.

    Reading a page can start a disk read from the thread that reads it, even a read that is
    told not to wait (``RWF_NOWAIT``): the kernel's readahead marks a page some way into each
    window it reads, and whoever reads that page starts the next window (allocating its pages,
    mapping its blocks, queueing the requests), as does a read of a page that is not cached at
    all. Once a slice of the file was not cached, the slices after it were brought in by the
    worker thread's readahead and carry those marks; the loop would start most of the file's
    disk reads with its probes and sendfiles. So after such a slice the loop leaves every slice
    to the worker thread until ``cachestat(2)``, which starts nothing, says the next
    :data:`COLD_LOOKAHEAD` bytes (or what is left) are all cached; without ``cachestat``, for
    the rest of the transfer.
    """

    __slots__ = ("cold", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        #: A slice was not cached, and the pages ahead have not all been seen cached since.
        self.cold = False

    def loop_may_read(self, job: Job, n: int = 0) -> bool:
        """False while the file is cold at ``job.pos``, or (given ``n``) when ``cachestat``
        says ``n`` bytes from there are not all cached: the next slice goes to a thread."""
        if self.cold and not in_cache(self.fd, job.pos, job.slice(COLD_LOOKAHEAD)):
            return False
        self.cold = False
        return n == 0 or in_cache(self.fd, job.pos, n) is not False


async def _sendfile_to_stream(job: Job, src_fd: int) -> None:
    warmth = Warmth(src_fd)
    while job.remaining > 0:
        if job.at_expected_end and at_end(src_fd, job.pos):
            return  # end of file, seen on the loop: a sendfile there would go to a thread
        n = job.slice(SENDFILE_CHUNK)
        offload = not (warmth.loop_may_read(job) and cached(src_fd, job.pos, n))
        warmth.cold = offload
        try:
            if offload:  # the pages come from the disk: let a worker thread wait for them
                job.yielded = True
                sent = await anyio.to_thread.run_sync(os.sendfile, job.sink.fd, src_fd, job.pos, n)
            else:
                sent = os.sendfile(job.sink.fd, src_fd, job.pos, n)
        except BlockingIOError:
            await job.wait_writable()
            continue
        except OSError as exc:
            job.raise_if_refused(Method.SENDFILE, exc)
            raise
        if sent == 0:
            return  # end of file
        job.advance(sent, Method.SENDFILE, offloaded=offload)
        if job.remaining > 0:
            # A short count means the socket buffer is full: wait instead of asking for EAGAIN.
            await (job.wait_writable() if sent < n else job.pause())


async def _into_regular_file(job: Job, src_fd: int, method: Method) -> None:
    """copy_file_range or sendfile into a regular file, slice by slice in a worker thread.

    Writes at the destination's file position and advances it, like ``write(2)``.
    """
    dst_fd = job.sink.fd

    def step(pos: int, n: int) -> int:
        if method is Method.COPY_FILE_RANGE:
            return os.copy_file_range(src_fd, dst_fd, n, pos)
        return os.sendfile(dst_fd, src_fd, pos, n)

    while job.remaining > 0:
        n = job.slice(FILE_CHUNK)
        job.yielded = True
        try:
            done = await anyio.to_thread.run_sync(step, job.pos, n)
        except OSError as exc:
            job.raise_if_refused(method, exc)
            raise
        if done == 0:
            size = job.src.size
            if job.sent == 0 and (job.pos < size or size == 0):
                # procfs and sysfs files report size 0 and copy nothing, yet have bytes to read.
                raise Refusal(method, None, f"{method} copied nothing; reading instead")
            return
        job.advance(done, method, offloaded=True)
        await job.pause()


async def userspace_from_file(job: Job, src_fd: int) -> None:
    """Read into a buffer, write it out. Reads come from the page cache on the event loop when
    :class:`Warmth` allows it and ``preadv2(RWF_NOWAIT)`` can serve them, from a worker thread
    otherwise."""
    sink = job.sink
    to_file = sink.info.kind is Kind.REGULAR_FILE
    chunk = DATAGRAM_CHUNK if sink.info.kind is Kind.DATAGRAM else USER_CHUNK
    buf = memoryview(bytearray(max(1, job.slice(chunk))))
    warmth = Warmth(src_fd)
    while job.remaining > 0:
        view = buf[: job.slice(len(buf))]
        got = None
        # cachestat first: an RWF_NOWAIT read of pages that are not cached starts their read.
        # At the end of the file, a read returns 0 before it looks for any page.
        if not to_file and (job.at_expected_end or warmth.loop_may_read(job, len(view))):
            got = read_nowait(src_fd, view, job.pos)
        offload = warmth.cold = got is None
        if got is None:
            job.yielded = True
            got = await anyio.to_thread.run_sync(os.preadv, src_fd, [view], job.pos)
        if got == 0:
            return
        job.took(got)
        await deliver(job, view[:got], offloaded=offload)
        if job.remaining > 0:
            await job.pause()


async def _sendfile(job: Job, src_fd: int) -> None:
    if job.sink.info.kind is Kind.REGULAR_FILE:
        await _into_regular_file(job, src_fd, Method.SENDFILE)
    else:
        await _sendfile_to_stream(job, src_fd)


async def _copy_file_range(job: Job, src_fd: int) -> None:
    await _into_regular_file(job, src_fd, Method.COPY_FILE_RANGE)


_RUNNERS = {
    Method.COPY_FILE_RANGE: _copy_file_range,
    Method.SENDFILE: _sendfile,
    Method.USERSPACE: userspace_from_file,
}


def file_runners(src_fd: int) -> dict[Method, Callable[[Job], Awaitable[None]]]:
    """The loops that can move the bytes of the regular file ``src_fd``, by method."""

    def bind(loop: Callable[[Job, int], Awaitable[None]]) -> Callable[[Job], Awaitable[None]]:
        return lambda job: loop(job, src_fd)

    return {method: bind(loop) for method, loop in _RUNNERS.items()}
