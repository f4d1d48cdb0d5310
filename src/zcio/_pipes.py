"""A bounded pool of kernel pipes for splice(2).

Each pipe costs two fds and up to ``size`` bytes of kernel memory, so the pool has a bound
(``limit`` pipes in existence, busy or idle). When it is reached, ``acquire`` returns None and
the transfer copies through user space instead, as HAProxy does past ``maxpipes``. Pipes are
resized to ``size`` (at most ``/proc/sys/fs/pipe-max-size``); a refused resize (EPERM past
``pipe-user-pages-soft``) is tolerated and the pipe keeps the size it got. A pipe that still
holds bytes is closed, never pooled: its bytes belong to a transfer that did not finish.
"""

from __future__ import annotations

import errno
import fcntl
import os
import termios
import threading
from array import array
from contextlib import suppress

__all__ = ["Pipe", "PipePool", "default_pipe_pool", "pending"]

_DEFAULT_SIZE = 1 << 20


def _max_size() -> int:
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return _DEFAULT_SIZE


def pending(fd: int) -> int:
    """Bytes waiting to be read from a pipe or socket (``FIONREAD``)."""
    buf = array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    return buf[0]


class Pipe:
    """Both ends of a non-blocking pipe, and how many bytes a transfer left in it."""

    __slots__ = ("held", "r", "size", "w")

    def __init__(self, size: int) -> None:
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with suppress(OSError):  # EPERM past the per-user soft limit: keep the default size
            fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, size)
        self.size: int = fcntl.fcntl(self.w, fcntl.F_GETPIPE_SZ)
        self.held = 0

    def shrink(self, size: int) -> bool:
        """Make the empty pipe ``size`` bytes (no larger than it is); False if refused."""
        if self.size <= size:
            return True
        try:
            self.size = fcntl.fcntl(self.w, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            return False
        return self.size <= size

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


class PipePool:
    """At most ``limit`` pipes of ``size`` bytes, reused across transfers; of those, at most
    ``keep`` (default: ``limit``) are kept open while idle, so a pool sized for a burst does
    not hold the burst's fds after it. Thread-safe."""

    def __init__(
        self, limit: int = 64, size: int = _DEFAULT_SIZE, *, keep: int | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._idle: list[Pipe] = []
        self._busy = 0
        self.keep: int | None = None
        self.configure(limit=limit, size=size, keep=keep)

    def configure(
        self, *, limit: int | None = None, size: int | None = None, keep: int | None = None
    ) -> None:
        """Change the bound, the size or how many idle pipes are kept; idle pipes of another
        size are closed."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be >= 0")
        if keep is not None and keep < 0:
            raise ValueError("keep must be >= 0")
        if size is not None and size <= 0:
            raise ValueError("size must be > 0")
        with self._lock:
            if limit is not None:
                self.limit = limit
            if keep is not None:
                self.keep = keep
            if size is not None:
                self.size = min(size, _max_size())
                # What F_SETPIPE_SZ makes of it: a power of two, at least a page.
                self._pipe_size = max(os.sysconf("SC_PAGE_SIZE"), 1 << (self.size - 1).bit_length())
            stale = self._idle
            self._idle = []
        for pipe in stale:
            pipe.close()

    @property
    def busy(self) -> int:
        """Pipes lent to running transfers."""
        return self._busy

    @property
    def idle(self) -> int:
        """Pipes waiting in the pool."""
        return len(self._idle)

    def acquire(self) -> Pipe | None:
        """An empty pipe; None if ``limit`` pipes already exist, or if the process or the
        system is out of file descriptors (the caller then copies in user space, which needs
        none). Other errors of ``pipe2(2)`` are raised."""
        with self._lock:
            if self._idle:
                self._busy += 1
                return self._idle.pop()
            if self._busy >= self.limit:
                return None
            self._busy += 1
        try:
            return Pipe(self.size)
        except BaseException as exc:
            with self._lock:
                self._busy -= 1
            if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
                return None
            raise

    def release(self, pipe: Pipe) -> None:
        """Give ``pipe`` back: pooled if it is empty and of the pool's size, closed
        otherwise (so that pooled pipes stay alike, which ``tee_stream`` wants)."""
        clean = pipe.held == 0 and pipe.size == self._pipe_size and pending(pipe.r) == 0
        with self._lock:
            self._busy -= 1
            kept = len(self._idle)
            if clean and kept + self._busy < self.limit and (self.keep is None or kept < self.keep):
                self._idle.append(pipe)
                return
        pipe.close()

    def clear(self) -> None:
        """Close the idle pipes (busy ones are closed when released)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for pipe in idle:
            pipe.close()


_DEFAULT = PipePool()


def default_pipe_pool() -> PipePool:
    """The pool that transfers use unless given another. ``configure`` it to change the bound."""
    return _DEFAULT
