"""Running a plan: the transfer loops, and the one place where a method falls back to the next.

Every loop here follows the same rules:

* the event loop never waits on a disk: sockets are non-blocking (EAGAIN waits for
  writability on the running backend), file pages that are not cached are read by a worker
  thread (``_syscalls.cached`` decides, per chunk), and file-to-file copies run in threads;
* every system call is clamped, and the caller's :class:`~zcio.Progress` is updated right after
  each one, so a cancellation or an error always leaves an exact count behind;
* a refusal by the kernel on a transfer's first call, before any byte moved, is knowledge
  (``_knowledge``) and moves on to the next candidate; anything later is an error.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import anyio
from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint, checkpoint_if_cancelled

from ._errors import IncompleteTransfer, TransferError, ZeroCopyUnavailable, destination_error
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE, Refusal
from ._plan import Plan, Reason, choose
from ._probe import FdInfo
from ._progress import Progress
from ._sinks import Sink, open_sink
from ._source import FileSource, open_file_source
from ._stats import COUNTERS
from ._syscalls import cached, read_nowait

__all__ = ["plan", "send_file"]

#: Largest slice handed to one sendfile on the event loop. The socket buffer usually caps a
#: call well below it; it bounds how long one call can hold the loop when the peer is fast.
SENDFILE_CHUNK = 4 << 20
#: Slice for file-to-file copies, each one a worker-thread round trip.
FILE_CHUNK = 16 << 20
#: Buffer for user-space copies.
USER_CHUNK = 256 << 10
DATAGRAM_CHUNK = 32 << 10

_UNBOUNDED = 1 << 62
_SEND_FILE_METHODS = frozenset({Method.COPY_FILE_RANGE, Method.SENDFILE})


def _choose(src: FdInfo, dst: FdInfo, offered: frozenset[Method] | None = None) -> Plan:
    return choose(
        src,
        dst,
        offered=offered if offered is not None else frozenset(Method),
        disabled=KNOWLEDGE.disabled(),
        refused_pairs=KNOWLEDGE.refused_pairs(),
    )


def plan(src: object, dst: object) -> Plan:
    """Which method would move bytes from ``src`` to ``dst``, and why every other was not chosen.

    Probes both (``fstat``, ``fcntl``, ``getsockopt``); moves nothing, awaits nothing. Takes into
    account ``ZCIO_DISABLE`` and what the kernel refused earlier in this process.
    """
    from ._probe import probe

    return _choose(probe(src), probe(dst))


class _Job:
    """The state of one running transfer: where we are, what is left, what to count.

    With ``count=None`` (``to_eof``) the transfer runs until the source reports end of file;
    the size seen at the start only shapes the slices, so files that report no size (procfs)
    or that grow are still sent to their end.
    """

    def __init__(
        self, src: FileSource, sink: Sink, offset: int, count: int | None, progress: Progress
    ) -> None:
        self.src = src
        self.sink = sink
        self.pos = offset
        self.to_eof = count is None
        self.remaining = _UNBOUNDED if count is None else count
        self.progress = progress
        self.base = progress.sent
        self.yielded = False

    @property
    def sent(self) -> int:
        return self.progress.sent - self.base

    @property
    def at_expected_end(self) -> bool:
        """Reached the size seen at the start: the next call most likely reports EOF."""
        return self.to_eof and self.pos >= self.src.info.size

    def slice(self, chunk: int) -> int:
        n = min(self.remaining, chunk)
        left = self.src.info.size - self.pos
        return min(n, left) if self.to_eof and left > 0 else n

    def advance(self, n: int, method: Method, *, offloaded: bool = False) -> None:
        self.pos += n
        self.remaining -= n
        self.progress._advance(n)
        COUNTERS.moved(method, n, offloaded=offloaded)

    def raise_if_refused(self, method: Method, exc: OSError) -> None:
        """Raise :class:`Refusal` if ``exc`` means ``method`` cannot work here and nothing moved."""
        if self.sent == 0 and KNOWLEDGE.is_refusal(method, exc, self.src.info, self.sink.info):
            raise Refusal(method, exc) from exc

    async def wait_writable(self) -> None:
        self.yielded = True
        await self.sink.wait_writable()

    async def pause(self) -> None:
        """A checkpoint between two full slices: lets cancellation in and other tasks run."""
        if self.at_expected_end:
            return  # skip the loop turn: the next call is only the EOF check
        self.yielded = True
        await checkpoint()


async def _sendfile_to_stream(job: _Job) -> None:
    src_fd = job.src.fd
    while job.remaining > 0:
        n = job.slice(SENDFILE_CHUNK)
        offload = not cached(src_fd, job.pos, n)
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


async def _into_regular_file(job: _Job, method: Method) -> None:
    """copy_file_range or sendfile into a regular file, slice by slice in a worker thread.

    Writes at the destination's file position and advances it, like ``write(2)``.
    """
    src_fd, dst_fd = job.src.fd, job.sink.fd

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
            size = job.src.info.size
            if job.sent == 0 and (job.pos < size or size == 0):
                # procfs and sysfs files report size 0 and copy nothing, yet have bytes to read.
                raise Refusal(method, None, f"{method} copied nothing; reading instead")
            return
        job.advance(done, method, offloaded=True)
        await job.pause()


async def _userspace(job: _Job) -> None:
    """Read into a buffer, write it out. Reads come from the page cache on the event loop when
    ``preadv2(RWF_NOWAIT)`` can serve them, from a worker thread otherwise."""
    src_fd, sink = job.src.fd, job.sink
    to_file = sink.info.kind is Kind.REGULAR_FILE
    # A datagram socket sends each write as one message, and refuses messages over ~64 KiB.
    chunk = DATAGRAM_CHUNK if sink.info.kind is Kind.DATAGRAM else USER_CHUNK
    buf = memoryview(bytearray(max(1, job.slice(chunk))))
    while job.remaining > 0:
        view = buf[: job.slice(len(buf))]
        got = None if to_file else read_nowait(src_fd, view, job.pos)
        offload = got is None
        if got is None:
            job.yielded = True
            got = await anyio.to_thread.run_sync(os.preadv, src_fd, [view], job.pos)
        if got == 0:
            return
        data = view[:got]
        if to_file:
            await anyio.to_thread.run_sync(_write_all, sink.fd, data)
            job.advance(got, Method.USERSPACE, offloaded=True)
        elif sink.tls:
            job.yielded = True
            await sink.write_stream(bytes(data))  # a copy: the stream may keep a reference
            job.advance(got, Method.USERSPACE, offloaded=offload)
        else:
            while data:
                try:
                    written = sink.write_fd(data)
                except BlockingIOError:
                    await job.wait_writable()
                    continue
                job.advance(written, Method.USERSPACE, offloaded=offload)
                offload = False
                data = data[written:]
        if job.remaining > 0:
            await job.pause()


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


async def _sendfile(job: _Job) -> None:
    if job.sink.info.kind is Kind.REGULAR_FILE:
        await _into_regular_file(job, Method.SENDFILE)
    else:
        await _sendfile_to_stream(job)


async def _copy_file_range(job: _Job) -> None:
    await _into_regular_file(job, Method.COPY_FILE_RANGE)


_RUNNERS: dict[Method, Callable[[_Job], Awaitable[None]]] = {
    Method.COPY_FILE_RANGE: _copy_file_range,
    Method.SENDFILE: _sendfile,
    Method.USERSPACE: _userspace,
}


def _static_reason(plan: Plan) -> Reason:
    """Why a plan that starts with the user-space copy could not do better."""
    reasons = [s.reason for s in plan.passed_over if s.reason is not Reason.NOT_OFFERED]
    interesting = [r for r in reasons if r is not Reason.NOT_SUPPORTED]
    return (interesting or reasons or [Reason.NOT_SUPPORTED])[0]


async def _run(plan: Plan, job: _Job, fallback: bool) -> None:
    """The one fallback site: try each candidate in order until one runs to the end."""
    if not plan.zero_copy:
        if not fallback:
            raise ZeroCopyUnavailable(
                f"no zero-copy method from a {plan.src} to a {plan.dst}:\n{plan}",
                tuple((str(s.method), s.why) for s in plan.passed_over),
            )
        COUNTERS.fallback(_static_reason(plan))
    refusals: list[tuple[str, str]] = []
    for method in plan.candidates:
        if method is Method.USERSPACE and not fallback:
            raise ZeroCopyUnavailable(
                f"the kernel refused every zero-copy method from a {plan.src} to a {plan.dst}",
                tuple(refusals),
            )
        job.progress.method = method
        COUNTERS.transfer(method)
        try:
            await _RUNNERS[method](job)
        except Refusal as refusal:
            COUNTERS.fallback(Reason.KERNEL_REFUSED)
            refusals.append((str(method), str(refusal)))
            continue
        return


def _check_range(offset: object, count: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {type(offset).__name__}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"count must be an int or None, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"count must be >= 0 or None, got {count}")


async def send_file(
    dst: object,
    file: object,
    *,
    offset: int = 0,
    count: int | None = None,
    fallback: bool = True,
    progress: Progress | None = None,
) -> int:
    """Send ``count`` bytes of ``file``, from ``offset``, to ``dst``; return how many were sent.

    ``file`` is a path, a binary file object or the fd of a regular file. ``dst`` is a
    non-blocking socket or pipe, an anyio or trio socket stream (TLS ones included), an asyncio
    transport or ``StreamWriter``, or a regular file open for writing (written at its current
    position, with ``copy_file_range``). ``count=None`` means up to the end of the file.

    The bytes move with ``sendfile(2)`` (``copy_file_range(2)`` into files) when the kernel
    allows it, never blocking the event loop: a full socket waits for writability, and pages
    that are not in the page cache are sent from a worker thread. Bytes an asyncio transport
    or a Python file object already buffers go out first. Otherwise, and always for TLS in user
    space, the file is copied through user space; ``fallback=False`` raises
    :class:`ZeroCopyUnavailable` instead, before any byte moves. ``zcio.stats()`` counts which.

    A file object's position ends at ``offset`` plus the bytes sent, whatever happens; an fd's
    position is left alone.

    Errors: ``TypeError``/``ValueError`` for wrong arguments and :class:`BusyError` when another
    zcio transfer is sending to ``dst``, all before any byte moves;
    :class:`IncompleteTransfer` when ``count`` was given and the file ended first;
    :class:`BrokenDestination` when the peer went away (reset, broken pipe) and
    :class:`ClosedDestination` when ``dst`` was closed. Each carries ``.sent``.

    Cancellation: like trio's ``send_all``, a cancelled call may have sent some, all or none of
    the bytes; pass a :class:`Progress` to learn exactly how many reached ``dst`` (for a TLS
    stream: were handed to its ``send``; the stream itself is then usually unusable).
    """
    _check_range(offset, count)
    progress = progress if progress is not None else Progress()
    await checkpoint_if_cancelled()
    sink = open_sink(dst)
    async with open_file_source(file) as src:
        job = _Job(src, sink, offset, count, progress)
        the_plan = _choose(src.info, sink.info, _SEND_FILE_METHODS)
        try:
            if job.remaining > 0:
                async with sink:
                    await _run(the_plan, job, fallback)
        except (TransferError, ZeroCopyUnavailable):
            raise
        except Exception as exc:
            mapped = destination_error(exc, job.sent)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            if src.fileobj is not None:
                src.fileobj.seek(offset + job.sent)
    if count is not None and job.sent < count:
        raise IncompleteTransfer(job.sent, count)
    if not job.yielded:
        await cancel_shielded_checkpoint()
    return job.sent
