"""Transfer loops whose source is a stream: splice through a pipe, direct splice, user space.

splice(2) needs a pipe on one side. Between two sockets the bytes go socket -> pipe -> socket;
the pipe is emptied before the source is read again, because EAGAIN from socket -> pipe cannot
say whether the socket was empty or the pipe full (HAProxy's rule). When one side is already a
pipe, one splice moves the bytes and ``FIONREAD`` on the source tells which side to wait for.

``splice_in``, ``drain_pipe`` and ``userspace_from_tap`` are shared with ``tee_stream``, which
fills one pipe, tees it into one pipe per destination and drains each.
"""

from __future__ import annotations

import fcntl
import functools
import os
from array import array
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
from anyio.lowlevel import checkpoint

from ._constants import DIRECT_CHUNK, MAX_CALL, SPLICE_FLAGS, STRANDED_FLUSH, USER_CHUNK
from ._errors import SourceFailed
from ._job import Job, Running, deliver
from ._kinds import Kind, Method
from ._knowledge import Refusal
from ._pipes import Pipe, PipePool, pending
from ._plan import Reason
from ._taps import Tap

__all__ = [
    "at_urgent_mark",
    "drain_pipe",
    "read_past_mark",
    "splice_in",
    "stream_runners",
    "userspace_from_tap",
]


async def _wait_either(tap: Tap, job: Job) -> None:
    """Wait until the source is readable or the destination writable, whichever comes first."""
    async with anyio.create_task_group() as tg:

        async def wait(fn: Callable[[], Awaitable[None]]) -> None:
            await fn()
            tg.cancel_scope.cancel()

        tg.start_soon(wait, tap.wait_readable)
        tg.start_soon(wait, job.sink.wait_writable)


async def splice_direct(job: Job, tap: Tap) -> None:
    """One splice per slice, when the source or the destination is a pipe."""
    src_is_file = tap.info.kind is Kind.REGULAR_FILE
    while job.remaining > 0:
        try:
            n = os.splice(tap.fd, job.sink.fd, min(job.remaining, DIRECT_CHUNK), flags=SPLICE_FLAGS)
        except BlockingIOError:
            job.yielded = True
            if at_urgent_mark(tap):
                if not await _past_mark(job, tap):
                    return
                continue
            # EAGAIN: the source has nothing, or the destination is full. Bytes waiting in the
            # source mean the latter.
            try:
                source_has_bytes = src_is_file or pending(tap.fd) > 0
            except OSError:
                await _wait_either(tap, job)
                continue
            if source_has_bytes:
                await job.sink.wait_writable()
            else:
                await tap.wait_readable()
            continue
        except OSError as exc:
            job.raise_if_refused(Method.SPLICE, exc)
            if tap.info.kind is not Kind.PIPE and job.sink.info.kind is Kind.PIPE:
                raise SourceFailed(exc) from exc  # the destination pipe gives EPIPE only
            raise
        if n == 0:
            if at_urgent_mark(tap) and await _past_mark(job, tap):
                continue
            return
        job.advance(n, Method.SPLICE)
        if n == DIRECT_CHUNK:
            await job.pause()


async def splice_via_pipe(job: Job, tap: Tap, pool: PipePool) -> None:
    """Source -> pipe -> destination, never reading while the pipe holds bytes."""
    pipe = pool.acquire()
    if pipe is None:
        raise Refusal(Method.SPLICE, None, Reason.NO_PIPE.value, Reason.NO_PIPE)
    try:
        await _pump(job, tap, pipe)
    except BaseException as exc:
        if pipe.held and isinstance(exc, anyio.get_cancelled_exc_class()):
            await _flush_stranded(job, pipe)
        raise
    finally:
        pool.release(pipe)  # closed rather than pooled if bytes are still in it


async def _pump(job: Job, tap: Tap, pipe: Pipe) -> None:
    while True:
        if not pipe.held:
            if job.remaining <= 0:
                return
            n = await splice_in(job, tap, pipe, min(job.remaining, pipe.size))
            if n == 0:
                if at_urgent_mark(tap) and await _past_mark(job, tap):
                    continue
                return
        full = pipe.held == pipe.size
        try:
            drained = drain_pipe(pipe, job.sink.fd, job)
        except OSError as exc:
            if job.sent == 0:
                _carry_if_refused(job, pipe, exc)
            raise
        if not drained:
            await job.wait_writable()
        elif full:
            await job.pause()  # a full pipe went through without waiting: let others run


async def splice_in(job: Running, tap: Tap, pipe: Pipe, limit: int) -> int:
    """Splice up to ``limit`` bytes from the source into the empty ``pipe``, waiting for the
    source; count them as taken. 0 at the end of the source or at an urgent mark (the caller
    tells which with :func:`at_urgent_mark`). A first call the kernel refuses raises
    ``Refusal``; other errors come wrapped in ``SourceFailed``."""
    splice = functools.partial(os.splice, tap.fd, pipe.w, min(limit, MAX_CALL), flags=SPLICE_FLAGS)
    while True:
        try:
            if tap.info.kind is Kind.REGULAR_FILE:  # may wait for the disk: not on the loop
                n = await anyio.to_thread.run_sync(splice)
            else:
                n = splice()
        except BlockingIOError:  # the pipe is empty, so the source is (or at a mark)
            job.yielded = True
            if at_urgent_mark(tap):
                return 0
            await tap.wait_readable()
            continue
        except OSError as exc:
            job.raise_if_refused(Method.SPLICE, exc)
            raise SourceFailed(exc) from exc
        job.took(n)
        pipe.held = n
        return n


class _Delivered(Protocol):
    def delivered(self, n: int, method: Method) -> None: ...


def drain_pipe(pipe: Pipe, fd: int, job: _Delivered) -> bool:
    """Splice what the destination ``fd`` takes now out of ``pipe``, counting it in ``job``;
    True once the pipe is empty, False when the destination is full. Errors of the
    destination propagate as ``OSError``."""
    while pipe.held:
        try:
            m = os.splice(pipe.r, fd, pipe.held, flags=SPLICE_FLAGS)
        except BlockingIOError:
            return False
        pipe.held -= m
        job.delivered(m, Method.SPLICE)
    return True


def _carry_if_refused(job: Job, pipe: Pipe, exc: OSError) -> None:
    """If the kernel refused the first splice out, hand the bytes taken to the next method,
    in order (``job.carry``), and raise ``Refusal``."""
    try:
        job.raise_if_refused(Method.SPLICE, exc)
    except Refusal:
        job.carry = _read_exactly(pipe.r, pipe.held)
        pipe.held = 0
        raise


_SIOCATMARK = 0x8905


def at_urgent_mark(tap: Tap) -> bool:
    """Whether a TCP source's next byte is behind an urgent mark (``SIOCATMARK``).

    ``splice(2)`` stops at the mark of urgent data (``MSG_OOB``) and never passes it: it
    returns 0 if the peer has already closed, ``EAGAIN`` otherwise, however much follows; and
    ``FIONREAD`` says 0 there too. ``recv(2)`` steps over the out-of-band byte, as every
    reader of the stream does. So a 0 or an ``EAGAIN`` from a TCP source is checked here
    before it is taken for the end or for an empty socket. Other kinds have no urgent data.
    """
    if tap.info.kind is not Kind.TCP:
        return False
    flag = array("i", [0])
    try:
        fcntl.ioctl(tap.fd, _SIOCATMARK, flag)
    except OSError:
        return False
    return bool(flag[0])


async def read_past_mark(tap: Tap, limit: int) -> memoryview:
    """What follows an urgent mark, read into user space (``recv`` passes the mark); empty at
    the end of the stream. Waits while only the urgent byte itself has arrived."""
    buf = memoryview(bytearray(max(1, min(limit, USER_CHUNK))))
    while True:
        try:
            n = tap.read_fd(buf)
        except BlockingIOError:  # the urgent byte was all there was: passed now
            await tap.wait_readable()
            continue
        except OSError as exc:
            raise SourceFailed(exc) from exc
        return buf[:n]


async def _past_mark(job: Job, tap: Tap) -> bool:
    """Deliver the bytes behind an urgent mark from user space; False at the end of the
    stream. Called with nothing held in a pipe, so the bytes stay in order."""
    data = await read_past_mark(tap, job.remaining)
    if not data:
        return False
    job.took(len(data))
    await deliver(job, data)
    return True


def _read_exactly(fd: int, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


async def _flush_stranded(job: Job, pipe: Pipe) -> None:
    """After a cancel, try for a bounded time to deliver the bytes already in the pipe."""
    with anyio.CancelScope(shield=True), anyio.move_on_after(STRANDED_FLUSH):
        try:
            while not drain_pipe(pipe, job.sink.fd, job):
                await job.sink.wait_writable()
        except OSError:
            return  # the destination is gone: the bytes stay reported as stranded


async def userspace_from_tap(job: Running, tap: Tap) -> None:
    """Read a buffer's worth, deliver it (to every destination, for a tee), again."""
    buf = memoryview(bytearray(max(1, min(job.remaining, USER_CHUNK))))
    while job.remaining > 0:
        limit = min(job.remaining, len(buf))
        if tap.tls:
            job.yielded = True
        try:
            data = await _read_some(tap, buf[:limit])
        except BlockingIOError:
            job.yielded = True
            await tap.wait_readable()
            continue
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise SourceFailed(exc) from exc
        n = len(data)
        if n == 0:
            return
        job.took(n)
        await job.deliver(data)
        if n == limit:
            await job.pause()
        else:
            await checkpoint()


async def _read_some(tap: Tap, buf: memoryview) -> memoryview:
    """One read from the source into ``buf`` (or through the wrapper, for TLS)."""
    if tap.tls:
        return memoryview(await tap.read_stream(len(buf)))
    if tap.info.kind is Kind.REGULAR_FILE:  # may wait for the disk: not on the loop
        return buf[: await anyio.to_thread.run_sync(tap.read_fd, buf)]
    return buf[: tap.read_fd(buf)]


def stream_runners(tap: Tap, pool: PipePool) -> dict[Method, Callable[[Job], Awaitable[None]]]:
    """The loops that can move ``tap``'s bytes, by method."""
    direct = tap.info.kind is Kind.PIPE

    async def splice(job: Job) -> None:
        if direct or job.sink.info.kind is Kind.PIPE:
            await splice_direct(job, tap)
        else:
            await splice_via_pipe(job, tap, pool)

    async def userspace(job: Job) -> None:
        await userspace_from_tap(job, tap)

    return {Method.SPLICE: splice, Method.USERSPACE: userspace}
