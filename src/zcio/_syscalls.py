"""The system calls Python's ``os`` module lacks, and the limits of the ones it has.

``tee(2)`` and ``cachestat(2)`` are reached through ctypes; everything else is ``os``. Every
zero-copy call is clamped to :data:`MAX_CALL`, the most Linux moves in one call: asking for
more fails on some kernels (EINVAL) and overflows on others.
"""

from __future__ import annotations

import ctypes
import errno
import os

from ._constants import MAX_CALL

__all__ = ["MAX_CALL", "PAGE", "at_end", "cached", "in_cache", "read_nowait", "tee"]

PAGE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451  # the same number on every architecture (added in Linux 6.5)


class _Range(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _CacheStat(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    )


_has_cachestat = True


def in_cache(fd: int, offset: int, length: int) -> bool | None:
    """Whether every page of ``[offset, offset + length)`` is in the page cache, by
    ``cachestat(2)`` (Linux 6.5+) alone: one call that copies nothing and starts no I/O. Pages
    whose readahead is still in flight count as cached. None when the kernel cannot tell (no
    ``cachestat``, or it failed).
    """
    global _has_cachestat
    if length <= 0:
        return True
    if not _has_cachestat:
        return None
    first = offset // PAGE
    pages = (offset + length + PAGE - 1) // PAGE - first
    rng = _Range(first * PAGE, pages * PAGE)
    stat = _CacheStat()
    if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(stat), 0) == 0:
        return int(stat.cache) >= pages
    if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
        _has_cachestat = False
    return None


def cached(fd: int, offset: int, length: int) -> bool:
    """Whether ``[offset, offset + length)`` can be read without waiting for the disk.

    ``cachestat(2)`` (Linux 6.5+) counts the cached pages in one call, copying nothing; but it
    also counts pages whose read is still in flight (readahead), which a sendfile would wait
    for. So a range it calls cached must also pass a ``preadv2(RWF_NOWAIT)`` probe of its first
    and last byte, which fails on pages still being read. Without ``cachestat`` only the probe
    runs, which can miss a hole in the middle of the range. A probe is a read: on a page that
    is not cached, or that the kernel marked for readahead, it starts that I/O (without waiting
    for it) from the calling thread.
    """
    if length <= 0:
        return True
    last = offset + length - 1
    if last // PAGE - offset // PAGE > 1:  # 1-2 pages: the probes cover them
        whole = in_cache(fd, offset, length)
        if whole is False or (whole is None and _has_cachestat):
            return False  # when unsure, treat the range as cold: a thread is always safe
    one = memoryview(bytearray(1))
    if read_nowait(fd, one, offset) != 1:
        return False
    return last // PAGE == offset // PAGE or read_nowait(fd, one, last) == 1


def at_end(fd: int, offset: int) -> bool:
    """Whether ``offset`` is at or past the end of the regular file ``fd``, known without
    waiting: a read there returns 0 before looking for any page. False when unsure (the file
    grew, or the filesystem has no ``RWF_NOWAIT``)."""
    try:
        return read_nowait(fd, memoryview(bytearray(1)), offset) == 0
    except OSError:
        return False


def read_nowait(fd: int, buf: memoryview, offset: int) -> int | None:
    """Read what the page cache holds at ``offset`` into ``buf``; None if it would wait for I/O.

    May return fewer bytes than asked: the cached prefix. 0 means end of file.
    """
    try:
        return os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:  # filesystems without RWF_NOWAIT support
            return None
        raise


_libc.tee.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_uint)
_libc.tee.restype = ctypes.c_ssize_t


def tee(fd_in: int, fd_out: int, count: int, flags: int = 0) -> int:
    """``tee(2)``, the call ``os`` lacks beside ``os.splice``: duplicate up to ``count`` bytes
    from the pipe ``fd_in`` into the pipe ``fd_out``, consuming none; return how many.

    ``count`` is clamped to the most Linux moves in one call; ``flags`` are ``os.SPLICE_F_*``
    (``os.SPLICE_F_NONBLOCK`` for non-blocking pipes). A plain system call: it does not await,
    so there is nothing to cancel. Errors are the kernel's, as ``OSError`` with its ``errno``
    (``EAGAIN`` when ``fd_in`` is empty or ``fd_out`` full with ``SPLICE_F_NONBLOCK``,
    ``EINVAL`` when either is not a pipe).
    """
    n = _libc.tee(fd_in, fd_out, min(count, MAX_CALL), flags)
    if n < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return int(n)
