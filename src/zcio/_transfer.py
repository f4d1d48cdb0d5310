"""The public transfer functions: each reads as "unwrap -> plan -> run".

* unwrap: the adapters (``_adapters``) turn the caller's objects into a sink and a tap (or a
  file source, ``_source``), and the arguments are checked (``_checks``);
* plan: ``_inspect.choose_now`` asks ``_plan`` for the candidate methods;
* run: ``_driver.run`` tries them in order with the transfer loops (``_file_loops``,
  ``_stream_loops``), inside ``_errors.map_exceptions``, which turns what fails into zcio's
  exceptions with the exact counts.

``send_file`` first tries the small-send path (``_small_send``).
"""

from __future__ import annotations

import os

from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from ._adapters import in_trio_run, open_sink, open_tap, unwrap
from ._checks import check_count, check_distinct, check_range
from ._constants import SMALL_SEND_MAX
from ._driver import PlanRoute, run
from ._errors import IncompleteTransfer, map_exceptions
from ._file_loops import file_runners
from ._inspect import FILE_METHODS, STREAM_METHODS, choose_now, plan
from ._job import Job
from ._kinds import Kind
from ._open import open_cached_fd
from ._pipes import PipePool, default_pipe_pool
from ._probe import describe_fd
from ._progress import Progress
from ._sinks import Sink
from ._small_send import send_small
from ._source import FileSource, open_file_source
from ._stream_loops import stream_runners
from ._taps import Tap
from ._target import Owner

__all__ = ["copy", "plan", "send_file", "splice_stream"]


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

    ``file`` is a path, a binary file object or the fd of a regular file. A path is opened on
    the event loop when the kernel can do it from its caches (:func:`zcio.open_cached`),
    otherwise in a worker thread, and closed before the call returns. ``dst`` is a
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
    check_range(offset, count)
    progress = progress if progress is not None else Progress()
    # A path the kernel can open from its caches is opened here, not in a worker thread.
    opened = open_cached_fd(file) if isinstance(file, str | bytes | os.PathLike) else None
    source, known = (file, None) if opened is None else opened
    try:
        already = 0
        if count is None or 0 < count <= SMALL_SEND_MAX:
            # Made before the cancellation check: it never waits, so a call it completes is
            # one that finished before noticing a cancellation, as any call that never waits.
            already, done = send_small(dst, source, offset, count, progress, known)
            if done:
                if in_trio_run():
                    # trio's rule: every call is a schedule point, so a loop of small sends
                    # cannot starve other tasks. Shielded: the bytes are sent, the call is done.
                    await cancel_shielded_checkpoint()
                return already
        await checkpoint_if_cancelled()
        sink = open_sink(dst)
        async with open_file_source(source) as src:
            return await _from_file(
                src, sink, offset, count, fallback, progress, set_position=False, already=already
            )
    finally:
        if opened is not None:
            os.close(opened[0])


async def _from_file(
    src: FileSource,
    sink: Sink,
    offset: int,
    count: int | None,
    fallback: bool,
    progress: Progress,
    *,
    set_position: bool,
    already: int = 0,
) -> int:
    """Run a file-sourced transfer; put the file's position at ``offset + sent`` afterwards.

    ``already``: bytes from ``offset`` on that the small-send path sent before (counted in
    ``progress``); the transfer goes on after them and reports them as sent."""
    check_distinct(src.info, sink.info)
    job = Job(src.info, sink, count, progress, offset=offset, already=already)
    route = PlanRoute(choose_now(src.info, sink.info, FILE_METHODS))
    try:
        with map_exceptions(job):
            if job.remaining > 0:
                async with sink:
                    await run(route, job, file_runners(src.fd), fallback)
    finally:
        if src.fileobj is not None:
            src.fileobj.seek(offset + job.sent)
        elif set_position:
            os.lseek(src.fd, offset + job.sent, os.SEEK_SET)
    return await _finish(job, count)


async def _from_stream(
    tap: Tap,
    sink: Sink,
    count: int | None,
    fallback: bool,
    progress: Progress,
    pool: PipePool | None,
) -> int:
    """Run a stream-sourced transfer: the bytes the source's wrapper read ahead go first."""
    check_distinct(tap.info, sink.info)
    job = Job(tap.info, sink, count, progress)
    route = PlanRoute(choose_now(tap.info, sink.info, STREAM_METHODS))
    runners = stream_runners(tap, pool or default_pipe_pool())
    with map_exceptions(job):
        async with sink, tap:
            buffered = tap.take_buffered(job.remaining)
            if buffered:  # read ahead by the wrapper before we came: it goes first
                job.took(len(buffered))
                await job.deliver(memoryview(buffered))
            if job.remaining > 0 and not tap.at_eof:
                await run(route, job, runners, fallback)
    return await _finish(job, count)


async def _finish(job: Job, count: int | None) -> int:
    if count is not None and job.sent < count:
        raise IncompleteTransfer(job.sent, count)
    if not job.yielded:
        await cancel_shielded_checkpoint()
    return job.sent


def _is_regular_file(obj: object) -> bool:
    target = unwrap(obj)
    if target.owner is Owner.PATH:
        return True  # open_file_source says what it really is
    if target.owner not in (Owner.FD, Owner.FILE) or target.closed:
        return False
    try:
        return describe_fd(target.fd).kind is Kind.REGULAR_FILE
    except OSError:
        return False


async def _copy(
    src: object,
    dst: object,
    count: int | None,
    fallback: bool,
    progress: Progress | None,
    pool: PipePool | None,
) -> int:
    check_count(count)
    progress = progress if progress is not None else Progress()
    await checkpoint_if_cancelled()
    sink = open_sink(dst)
    if _is_regular_file(src):
        async with open_file_source(src) as file:
            start = file.fileobj.tell() if file.fileobj else os.lseek(file.fd, 0, os.SEEK_CUR)
            return await _from_file(file, sink, start, count, fallback, progress, set_position=True)
    return await _from_stream(open_tap(src), sink, count, fallback, progress, pool)


async def splice_stream(
    src: object,
    dst: object,
    *,
    count: int | None = None,
    fallback: bool = True,
    progress: Progress | None = None,
    pool: PipePool | None = None,
) -> int:
    """Move bytes from ``src`` to ``dst`` until ``src`` ends (or ``count`` bytes); return how many.

    Between sockets, pipes and devices the bytes go through a kernel pipe with ``splice(2)``
    and never enter user space; a regular file source is sent with ``sendfile(2)`` (which the
    kernel runs through its own pipe). ``src`` and ``dst`` may be raw non-blocking sockets and
    fds, anyio and trio socket streams, and asyncio streams (``StreamReader`` as ``src``,
    ``StreamWriter`` or transport as ``dst``).

    Order is kept: bytes the source's wrapper already read ahead (an asyncio ``StreamReader``'s
    buffer, anyio's receive queue) are delivered first and read-ahead stops while the splice
    runs; bytes the destination buffers are flushed first. Both streams stay usable afterwards.
    ``dst`` is not closed or half-closed at the end: call ``send_eof()`` yourself to pass the
    end on (a proxy does).

    Pipes come from ``pool`` (default: :func:`default_pipe_pool`). When it is at its limit or
    the process is out of fds for a pipe, when TLS runs in user space on either side, for
    datagram sockets, or when the kernel refuses, the bytes are copied through user space
    instead, in order, and counted (``fallback=False`` raises :class:`ZeroCopyUnavailable`).

    Errors carry ``.sent`` (delivered) and ``.taken`` (consumed from ``src``):
    :class:`BrokenSource`/:class:`ClosedSource` when reading fails,
    :class:`BrokenDestination`/:class:`ClosedDestination` when writing does,
    :class:`IncompleteTransfer` when ``count`` was given and ``src`` ended first.

    Cancellation: bytes already in the pipe are delivered if the destination takes them within
    ``STRANDED_FLUSH`` (1 s); pass a :class:`Progress` to learn ``taken``, ``sent`` and
    ``stranded`` (taken but never delivered) exactly. A pipe that still holds bytes is closed,
    never reused.
    """
    return await _copy(src, dst, count, fallback, progress, pool)


async def copy(
    src: object,
    dst: object,
    *,
    count: int | None = None,
    fallback: bool = True,
    progress: Progress | None = None,
    pool: PipePool | None = None,
) -> int:
    """Go's ``io.Copy`` for async Python: move bytes from ``src`` to ``dst`` by the best method.

    :func:`plan` says which: ``copy_file_range`` between regular files, ``sendfile`` from a
    regular file, ``splice`` between streams and pipes, a user-space copy otherwise. A file
    source is read from its current position, which then advances by the bytes sent (as
    ``read`` would move it), for fds as for file objects. Everything else, errors and
    cancellation included, is as for :func:`splice_stream` and :func:`send_file`.
    """
    return await _copy(src, dst, count, fallback, progress, pool)
