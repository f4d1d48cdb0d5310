"""The state of one running transfer, shared by every transfer loop.

:class:`Running` is what the driver (``_driver``) and the loops shared with ``tee_stream``
need of a transfer; :class:`Job` is the one-destination kind, ``_tee.Fanout`` the other.
"""

from __future__ import annotations

import os
from typing import Protocol

import anyio
from anyio.lowlevel import checkpoint

from ._constants import STRANDED_FLUSH, UNBOUNDED
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE, Refusal
from ._probe import FdInfo
from ._progress import Progress
from ._sinks import Sink
from ._stats import COUNTERS

__all__ = ["STRANDED_FLUSH", "UNBOUNDED", "Job", "Running", "deliver", "deliver_unshielded"]


class Running(Protocol):
    """A running transfer, as the driver and the shared transfer loops see it."""

    #: Bytes taken from the source that a refused method left in user space.
    carry: bytes
    #: Whether the transfer has waited (or let other tasks run) at least once.
    yielded: bool
    #: Bytes still to move (``UNBOUNDED`` for "to the end").
    remaining: int

    @property
    def sent(self) -> int: ...

    @property
    def taken(self) -> int: ...

    def started(self, method: Method) -> None:
        """``method`` is about to run."""

    def took(self, n: int) -> None:
        """``n`` bytes were taken from the source."""

    def raise_if_refused(self, method: Method, exc: OSError) -> None:
        """Raise ``Refusal`` if ``exc`` means ``method`` cannot work here."""

    async def pause(self) -> None:
        """A checkpoint between two full slices."""

    async def deliver(self, data: memoryview) -> None:
        """Write all of ``data`` (already counted as taken) to the destination(s)."""


class Job:
    """Where a transfer is, what is left, and what to count.

    With ``count=None`` (``to_eof``) the transfer runs until the source reports end of file. For
    a file source, the size seen at the start (``size``) only shapes the slices, so files that
    report no size (procfs) or that grow are still followed to their end.

    ``took`` and ``delivered`` update the caller's :class:`Progress` right after each system
    call, so an exception, cancellation included, always leaves exact counts behind.
    """

    def __init__(
        self,
        src: FdInfo,
        sink: Sink,
        count: int | None,
        progress: Progress,
        *,
        offset: int = 0,
        already: int = 0,
    ) -> None:
        self.src = src
        self.sink = sink
        # ``already``: bytes of this transfer (from ``offset`` on) sent before the job was made,
        # and already counted in ``progress``; the job goes on after them.
        self.pos = offset + already
        self.to_eof = count is None
        self.remaining = UNBOUNDED if count is None else count - already
        self.progress = progress
        self._base_sent = progress.sent - already
        self._base_taken = progress.taken - already
        self.yielded = False
        #: Bytes taken from the source that a refused method left in user space; the next
        #: method delivers them first.
        self.carry = b""

    @property
    def sent(self) -> int:
        return self.progress.sent - self._base_sent

    @property
    def taken(self) -> int:
        return self.progress.taken - self._base_taken

    @property
    def at_expected_end(self) -> bool:
        """A file source reached the size seen at the start: the next call most likely says EOF."""
        return self.to_eof and self.src.size >= 0 and self.pos >= self.src.size

    def slice(self, chunk: int) -> int:
        n = min(self.remaining, chunk)
        left = self.src.size - self.pos
        return min(n, left) if self.to_eof and self.src.size >= 0 and left > 0 else n

    def started(self, method: Method) -> None:
        self.progress.method = method

    def took(self, n: int) -> None:
        self.pos += n
        self.remaining -= n
        self.progress.taken += n

    def delivered(self, n: int, method: Method, *, offloaded: bool = False) -> None:
        self.progress.sent += n
        COUNTERS.moved(method, n, offloaded=offloaded)

    def advance(self, n: int, method: Method, *, offloaded: bool = False) -> None:
        """Bytes taken and delivered by one call (sendfile, copy_file_range, direct splice)."""
        self.took(n)
        self.delivered(n, method, offloaded=offloaded)

    def raise_if_refused(self, method: Method, exc: OSError) -> None:
        """Raise :class:`Refusal` if ``exc`` means ``method`` cannot work here and nothing moved."""
        if self.taken == 0 and KNOWLEDGE.is_refusal(method, exc, self.src, self.sink.info):
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

    async def deliver(self, data: memoryview) -> None:
        await deliver(self, data)


async def deliver(job: Job, data: memoryview, *, offloaded: bool = False) -> None:
    """Write all of ``data`` (already counted as taken) to the sink, counting what arrives.

    If cancelled part way, what is left of ``data`` is still delivered, shielded, for at most
    :data:`STRANDED_FLUSH` seconds: the bytes were taken from the source and would be lost
    otherwise. Not for TLS streams: a cancelled TLS send may have sent an unknown part of a
    record, so repeating it could duplicate bytes; those stay reported as stranded.
    """
    try:
        await deliver_unshielded(job, data, offloaded)
    except anyio.get_cancelled_exc_class():
        left = job.taken - job.sent
        if 0 < left <= len(data) and not job.sink.tls:
            with anyio.CancelScope(shield=True), anyio.move_on_after(STRANDED_FLUSH):
                await deliver_unshielded(job, data[len(data) - left :], False)
        raise


async def deliver_unshielded(job: Job, data: memoryview, offloaded: bool) -> None:
    sink = job.sink
    if sink.info.kind is Kind.REGULAR_FILE:
        await anyio.to_thread.run_sync(_write_all, sink.fd, data)
        job.delivered(len(data), Method.USERSPACE, offloaded=True)
    elif sink.tls:
        job.yielded = True
        await sink.write_stream(bytes(data))  # a copy: the stream may keep a reference
        job.delivered(len(data), Method.USERSPACE, offloaded=offloaded)
    else:
        while data:
            try:
                written = sink.write_fd(data)
            except BlockingIOError:
                await job.wait_writable()
                continue
            job.delivered(written, Method.USERSPACE, offloaded=offloaded)
            offloaded = False
            data = data[written:]


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]
