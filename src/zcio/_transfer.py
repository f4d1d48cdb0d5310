"""The public transfer functions, and the one place where a method falls back to the next.

Each function resolves its arguments (``_source``, ``_taps``, ``_sinks``), asks ``_plan`` for
candidates, and hands a :class:`~zcio._job.Job` to ``_run``, which tries the candidates in order.
Errors are translated once, here, with the exact counts attached.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import sys
from collections.abc import Awaitable, Callable, Mapping

from anyio.lowlevel import cancel_shielded_checkpoint, checkpoint_if_cancelled

from ._endpoint import is_claimed
from ._errors import IncompleteTransfer, SourceFailed, ZeroCopyUnavailable, translate
from ._file_loops import RUNNERS as FILE_RUNNERS
from ._job import Job, deliver
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE, Refusal
from ._objects import Owner, unwrap
from ._open import open_cached_fd
from ._pipes import PipePool, default_pipe_pool
from ._plan import Plan, Reason, choose
from ._probe import FdInfo, describe_fd, probe
from ._progress import Progress
from ._sinks import Sink, open_sink
from ._source import FileSource, open_file_source
from ._stats import COUNTERS
from ._stream_loops import stream_runners
from ._syscalls import at_end, cached
from ._taps import open_tap

__all__ = ["copy", "plan", "send_file", "splice_stream"]

Runner = Callable[[Job], Awaitable[None]]

_FILE_METHODS = frozenset({Method.COPY_FILE_RANGE, Method.SENDFILE})
_STREAM_METHODS = frozenset({Method.SPLICE})


def _choose(src: FdInfo, dst: FdInfo, offered: frozenset[Method]) -> Plan:
    return choose(
        src,
        dst,
        offered=offered | {Method.USERSPACE},
        disabled=KNOWLEDGE.disabled(),
        refused_pairs=KNOWLEDGE.refused_pairs(),
    )


def plan(src: object, dst: object) -> Plan:
    """Which method :func:`copy` would use to move bytes from ``src`` to ``dst``, and why every
    other method was passed over.

    Probes both (``fstat``, ``fcntl``, ``getsockopt``); moves nothing, awaits nothing. Takes into
    account ``ZCIO_DISABLE`` and what the kernel refused earlier in this process.
    """
    src_info = probe(src)
    offered = _FILE_METHODS if src_info.kind is Kind.REGULAR_FILE else _STREAM_METHODS
    return _choose(src_info, probe(dst), offered)


def _static_reason(plan: Plan) -> Reason:
    """Why a plan that starts with the user-space copy could not do better."""
    reasons = [s.reason for s in plan.passed_over if s.reason is not Reason.NOT_OFFERED]
    interesting = [r for r in reasons if r is not Reason.NOT_SUPPORTED]
    return (interesting or reasons or [Reason.NOT_SUPPORTED])[0]


async def _run(plan: Plan, job: Job, runners: Mapping[Method, Runner], fallback: bool) -> None:
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
        if job.carry:  # bytes a refused splice had taken: they go first, whatever comes next
            carry, job.carry = job.carry, b""
            await deliver(job, memoryview(carry))
        if method is Method.USERSPACE and not fallback:
            raise ZeroCopyUnavailable(
                f"no zero-copy method could move bytes from a {plan.src} to a {plan.dst}",
                tuple(refusals),
            )
        job.progress.method = method
        COUNTERS.transfer(method)
        try:
            await runners[method](job)
        except Refusal as refusal:
            COUNTERS.fallback(refusal.reason)
            refusals.append((str(method), str(refusal)))
            continue
        return


def _check_count(count: object) -> None:
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"count must be an int or None, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"count must be >= 0 or None, got {count}")


#: The largest file offset (``off_t``): an offset, or an offset plus a count, past it is no
#: position in any file.
MAX_OFFSET = (1 << 63) - 1


def _check_range(offset: object, count: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {type(offset).__name__}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    _check_count(count)
    if offset + (count if isinstance(count, int) else 0) > MAX_OFFSET:
        raise ValueError(f"offset + count must be at most 2**63 - 1, got {offset} + {count}")


# Kinds whose source and destination must differ: a file sent into itself grows for ever (and
# overlapping copy_file_range ranges are EINVAL), a pipe spliced into itself is EINVAL. A
# socket may be both (an echo: what the peer sends goes back to it).
_NOT_INTO_ITSELF = frozenset({Kind.REGULAR_FILE, Kind.PIPE})


def _check_distinct(src: FdInfo, dst: FdInfo) -> None:
    """``ValueError`` if ``src`` and ``dst`` are the same file or pipe (by ``st_dev, st_ino``,
    so other fds of it too): the call's own mistake, raised before any byte moves, and never
    taken for what the kernel can or cannot do."""
    if dst.kind in _NOT_INTO_ITSELF and src.identity == dst.identity != (0, 0):
        raise ValueError(f"the source and the destination are the same {dst.kind}")


def _raise_translated(exc: Exception, job: Job) -> None:
    cause = exc.exc if isinstance(exc, SourceFailed) else exc
    mapped = translate(exc, job.sent, job.taken)
    if mapped is None:
        return
    if mapped is cause:
        raise cause.with_traceback(cause.__traceback__) from None
    raise mapped from cause


async def _finish(job: Job, count: int | None) -> int:
    if count is not None and job.sent < count:
        raise IncompleteTransfer(job.sent, count)
    if not job.yielded:
        await cancel_shielded_checkpoint()
    return job.sent


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

    ``already``: bytes from ``offset`` on that :func:`_send_now` sent before (counted in
    ``progress``); the transfer goes on after them and reports them as sent."""
    _check_distinct(src.info, sink.info)
    job = Job(src.info, sink, count, progress, offset=offset, already=already)
    the_plan = _choose(src.info, sink.info, _FILE_METHODS)
    fd = src.fd
    runners = {m: (lambda job, run=run: run(job, fd)) for m, run in FILE_RUNNERS.items()}
    try:
        if job.remaining > 0:
            async with sink:
                await _run(the_plan, job, runners, fallback)
    except Exception as exc:
        _raise_translated(exc, job)
        raise
    finally:
        if src.fileobj is not None:
            src.fileobj.seek(offset + job.sent)
        elif set_position:
            os.lseek(fd, offset + job.sent, os.SEEK_SET)
    return await _finish(job, count)


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
    _check_range(offset, count)
    progress = progress if progress is not None else Progress()
    # A path the kernel can open from its caches is opened here, not in a worker thread.
    opened = open_cached_fd(file) if isinstance(file, str | bytes | os.PathLike) else None
    source, known = (file, None) if opened is None else opened
    try:
        already = 0
        if (count is None or 0 < count <= QUICK_MAX) and "asyncio" in sys.modules:
            # Made before the cancellation check: it never waits, so a call it completes is
            # one that finished before noticing a cancellation, as any call that never waits.
            already, done = _send_now(dst, source, offset, count, progress, known)
            if done:
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


#: Sends of up to this many bytes into an asyncio transport first try :func:`_send_now`.
QUICK_MAX = 256 << 10


@functools.cache
def _quick_destination() -> Callable[[object], tuple[int, FdInfo] | None]:
    # Imported on first use: the asyncio backend is loaded only where asyncio runs.
    from ._backends._asyncio import quick_destination

    return quick_destination


def _send_now(
    dst: object,
    file: object,
    offset: int,
    count: int | None,
    progress: Progress,
    known: os.stat_result | None = None,
) -> tuple[int, bool]:
    """The shortcut for small sends into an idle asyncio transport (an HTTP response body, say):
    one ``sendfile(2)``, made only when the general path would make exactly that call first and
    could not wait before it. Returns the bytes it sent (counted in ``progress`` and in
    ``zcio.stats()`` as sendfile) and whether that was the whole transfer; ``(0, False)`` when
    it sent nothing, and the general path then does everything as if this had not been tried.

    It goes ahead only if: ``dst`` is an asyncio transport or ``StreamWriter`` over a plaintext
    stream socket with nothing buffered (see ``quick_destination``), no other zcio transfer
    holds that socket, ``file`` is an fd or an unbuffered or buffered reader of a regular file,
    sendfile is neither disabled nor refused for the pair, the range (``count``, or with
    ``count=None`` the file's size from ``offset``) is at most :data:`QUICK_MAX` and in the page
    cache (``_syscalls.cached``). With ``count=None`` the transfer is whole once a read at its
    end returns nothing (``_syscalls.at_end``); a file that grew meanwhile is followed by the
    general path. Any error, ``EAGAIN`` included, is left to the general path, which repeats
    the call and reports it. Nothing here awaits, so no other task can write to the socket in
    between: no fence is needed. ``known``: ``file``'s stat, made a moment ago by the caller.
    """
    dest = _quick_destination()(dst)
    if dest is None:
        return 0, False
    sock_fd, sock_info = dest
    if isinstance(file, int):
        if isinstance(file, bool) or file < 0:
            return 0, False
        src_fd = file
    elif isinstance(file, io.FileIO | io.BufferedReader) and not file.closed:
        src_fd = file.fileno()
    else:
        return 0, False
    try:
        st = known if known is not None else os.fstat(src_fd)
    except OSError:
        return 0, False
    if not stat.S_ISREG(st.st_mode):
        return 0, False
    want = st.st_size - offset if count is None else count
    if not 0 < want <= QUICK_MAX:
        return 0, False
    key = (Method.SENDFILE, Kind.REGULAR_FILE, st.st_dev, sock_info.kind, 0)
    if not KNOWLEDGE.allows(key) or is_claimed(Sink.action, sock_info.identity):
        return 0, False
    try:
        if not cached(src_fd, offset, want):
            return 0, False
        sent = os.sendfile(sock_fd, src_fd, offset, want)
    except OSError:
        return 0, False
    if sent <= 0:
        return 0, False
    progress.taken += sent
    progress.sent += sent
    if sent < want or (count is None and not at_end(src_fd, offset + sent)):
        COUNTERS.moved(Method.SENDFILE, sent)  # the general path sends the rest, and counts
        return sent, False
    COUNTERS.moved_whole(Method.SENDFILE, sent)
    if not isinstance(file, int):
        file.seek(offset + sent)  # a file object's position, as the general path leaves it
    return sent, True


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
    _check_count(count)
    progress = progress if progress is not None else Progress()
    await checkpoint_if_cancelled()
    sink = open_sink(dst)
    if _is_regular_file(src):
        async with open_file_source(src) as file:
            start = file.fileobj.tell() if file.fileobj else os.lseek(file.fd, 0, os.SEEK_CUR)
            return await _from_file(file, sink, start, count, fallback, progress, set_position=True)
    tap = open_tap(src)
    _check_distinct(tap.info, sink.info)
    job = Job(tap.info, sink, count, progress)
    the_plan = _choose(tap.info, sink.info, _STREAM_METHODS)
    runners = stream_runners(tap, pool or default_pipe_pool())
    try:
        async with sink, tap:
            buffered = tap.take_buffered(job.remaining)
            if buffered:  # read ahead by the wrapper before we came: it goes first
                job.took(len(buffered))
                await deliver(job, memoryview(buffered))
            if job.remaining > 0 and not tap.at_eof:
                await _run(the_plan, job, runners, fallback)
    except Exception as exc:
        _raise_translated(exc, job)
        raise
    return await _finish(job, count)


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
