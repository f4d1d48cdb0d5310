"""The small-send path: one synchronous ``sendfile(2)`` for a small body into an idle plaintext
stream socket (an HTTP response body, say), made before the general path's machinery.

It is tried by ``send_file`` only; everything it declines, and the rest of what it started,
goes the general way as if it had not been tried.
"""

from __future__ import annotations

import io
import os
import stat

from ._adapters import small_send_destination
from ._constants import SMALL_SEND_MAX
from ._endpoint import Action, is_claimed
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE
from ._progress import Progress
from ._stats import COUNTERS
from ._syscalls import at_end, cached

__all__ = ["SMALL_SEND_MAX", "send_small"]


def send_small(
    dst: object,
    file: object,
    offset: int,
    count: int | None,
    progress: Progress,
    known: os.stat_result | None = None,
) -> tuple[int, bool]:
    """One ``sendfile(2)``, made only when the general path would make exactly that call first
    and could not wait before it. Returns the bytes it sent (counted in ``progress`` and in
    ``zcio.stats()`` as sendfile) and whether that was the whole transfer; ``(0, False)`` when
    it sent nothing, and the general path then does everything.

    It goes ahead only if: ``dst`` is a plaintext stream socket nothing else is writing to now
    (``_adapters.small_send_destination``: a non-blocking socket or its fd, an anyio or trio
    ``SocketStream`` whose send guard is free, an asyncio transport or ``StreamWriter`` with
    nothing buffered), no other zcio transfer holds that socket, ``file`` is an fd or an
    unbuffered or buffered reader of a regular file, sendfile is neither disabled nor refused
    for the pair, the range (``count``, or with ``count=None`` the file's size from
    ``offset``) is at most :data:`SMALL_SEND_MAX` and in the page cache
    (``_syscalls.cached``). With ``count=None`` the transfer is whole once a read at its end
    returns nothing (``_syscalls.at_end``); a file that grew meanwhile is followed by the
    general path. Any error, ``EAGAIN`` included, is left to the general path, which repeats
    the call and reports it. Nothing here awaits, so it cannot be cancelled, and no other task
    can write to the socket in between: no fence is needed.
    ``known``: ``file``'s stat, made a moment ago by the caller.
    """
    dest = small_send_destination(dst)
    src_fd = _source_fd(file)
    if dest is None or src_fd is None:
        return 0, False
    sock_fd, sock_info = dest
    try:
        st = known if known is not None else os.fstat(src_fd)
    except OSError:
        return 0, False
    want = st.st_size - offset if count is None else count
    if not stat.S_ISREG(st.st_mode) or not 0 < want <= SMALL_SEND_MAX:
        return 0, False
    key = (Method.SENDFILE, Kind.REGULAR_FILE, st.st_dev, sock_info.kind, 0)
    if not KNOWLEDGE.allows(key) or is_claimed(Action.SEND, sock_info.identity):
        return 0, False
    sent = _sendfile_cached(sock_fd, src_fd, offset, want)
    if sent <= 0:
        return 0, False
    progress.taken += sent
    progress.sent += sent
    if sent < want or (count is None and not at_end(src_fd, offset + sent)):
        COUNTERS.moved(Method.SENDFILE, sent)  # the general path sends the rest, and counts
        return sent, False
    COUNTERS.moved_whole(Method.SENDFILE, sent)
    if not isinstance(file, int):
        assert isinstance(file, io.FileIO | io.BufferedReader)
        file.seek(offset + sent)  # a file object's position, as the general path leaves it
    return sent, True


def _source_fd(file: object) -> int | None:
    """The fd of ``file`` if the small-send path may read it: an fd, or an open unbuffered or
    buffered reader (whose position is then set as the general path would)."""
    if isinstance(file, int):
        return None if isinstance(file, bool) or file < 0 else file
    if isinstance(file, io.FileIO | io.BufferedReader) and not file.closed:
        return file.fileno()
    return None


def _sendfile_cached(sock_fd: int, src_fd: int, offset: int, want: int) -> int:
    """``sendfile(2)`` of a range already in the page cache; 0 if it is not, or on any error
    (the general path repeats the call and reports it)."""
    try:
        if not cached(src_fd, offset, want):
            return 0
        return os.sendfile(sock_fd, src_fd, offset, want)
    except OSError:
        return 0
