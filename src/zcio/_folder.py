"""Opening files beneath a folder, so that nothing outside it can be opened, whatever races.

A server that checks a path (``realpath`` inside the folder) and then opens it by name has a
window between the two: a local process that swaps a symlink to ``/etc`` in over a checked name
gets the outside file served. :class:`Folder` closes the window the kernel's way: it holds a
descriptor of the folder and opens every file with ``openat2(2)`` relative to it, with
``RESOLVE_BENEATH`` (no ``..`` above it, no absolute symlink) and ``RESOLVE_NO_SYMLINKS``
(no symlink at all, unless following those that stay inside is asked for), plus
``RESOLVE_NO_MAGICLINKS``. The open is non-blocking, so a FIFO or a device swapped in is never
waited on, and only a regular file is kept: anything else is closed at once and refused.

On a kernel without ``openat2`` (before 5.6, or hidden by a seccomp filter) the path is opened
relative to the folder's descriptor with ``O_NOFOLLOW`` and the opened file's real location
(``/proc/self/fd``) must lie inside the folder: the same guarantee for files, checked after the
fact instead of enforced during the walk.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import stat
import struct
import threading

from . import _open

__all__ = ["Folder", "OutsideFolder"]

_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE_CACHED = 0x20
_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
# errnos that mean "this name leads somewhere it may not go" rather than "this name is bad".
_ESCAPES = frozenset({errno.EXDEV, errno.ELOOP})


class OutsideFolder(FileNotFoundError):
    """A path that would leave the folder (``..``, an absolute path, a symlink leading out,
    or any symlink where none are followed). A ``FileNotFoundError``: to a client it is a
    file that does not exist."""


class Folder:
    """A folder whose files are opened beneath it (see the module's docstring).

    ``follow_symlinks``: ``False`` (the default) refuses every symlink on the way; ``True``
    follows the symlinks that stay inside the folder and still refuses those that lead out.
    The folder's descriptor is opened here (``FileNotFoundError`` or ``NotADirectoryError``
    if it is not a folder) and kept until :meth:`close`: renaming or replacing the folder
    afterwards does not change which folder is served.
    """

    def __init__(self, path: str | os.PathLike[str], *, follow_symlinks: bool = False) -> None:
        self.path = os.path.realpath(path)
        self.follow_symlinks = follow_symlinks
        self.fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        resolve = _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS
        if not follow_symlinks:
            resolve |= _RESOLVE_NO_SYMLINKS
        self._how = _how(_OPEN, resolve)
        self._how_cached = _how(_OPEN, resolve | _RESOLVE_CACHED | _RESOLVE_NO_XDEV)
        self._dir_how = _how(os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY, resolve)
        #: Whether the folder's own mount is known local (then cached opens may run inline).
        self._local: bool | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the folder's descriptor (idempotent); opens afterwards raise ``ValueError``."""
        with self._lock:
            fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        # As a file object does: a folder dropped without close() gives its descriptor back.
        if getattr(self, "fd", -1) >= 0:
            os.close(self.fd)

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<zcio.Folder {self.path!r} follow_symlinks={self.follow_symlinks}>"

    def relative(self, path: str | os.PathLike[str]) -> str | None:
        """The absolute ``path`` as a path relative to the folder, if it names something
        inside it lexically; ``None`` otherwise (a relative ``path`` too). Nothing is
        resolved and nothing is asked of the system, so an event loop may call it: the open
        beneath the folder is what enforces containment."""
        full = os.path.normpath(os.fspath(path))
        if not full.startswith("/"):
            return None
        if full == self.path:
            return "."
        if not full.startswith(self.path.rstrip("/") + "/"):
            return None
        return full[len(self.path.rstrip("/")) + 1 :]

    def open_cached(self, relpath: str) -> tuple[io.FileIO, os.stat_result] | None:
        """The regular file at ``relpath`` beneath the folder, opened right here if the
        kernel can do it from its caches on a local filesystem (as :func:`zcio.open_cached`),
        and its ``fstat``; ``None`` otherwise (then call :meth:`open` in a worker thread).
        Never raises ``OSError``, never awaits, never opens anything outside the folder."""
        if not self._local or not _open.available() or self.fd < 0:
            return None
        name = os.fsencode(relpath)
        if b"\0" in name:
            return None
        fd = _open.openat2(self.fd, name, self._how_cached)
        if fd < 0:
            return None
        opened = _open.regular_fd(fd)
        if opened is None:
            return None
        return io.FileIO(opened[0], "r", closefd=True), opened[1]

    def open(self, relpath: str) -> tuple[io.FileIO, os.stat_result]:
        """Open the regular file at ``relpath`` beneath the folder for reading, and its
        ``fstat``. May wait for a disk or a server: call it in a worker thread.

        Raises :class:`OutsideFolder` for a path that leaves the folder (or meets a symlink
        where none are followed), ``FileNotFoundError`` for a missing file, ``IsADirectoryError``
        or ``FileNotFoundError`` for something that is not a regular file (a FIFO or a device
        is opened without waiting and closed at once, never read), and the ``OSError`` of the
        open otherwise (``PermissionError``, ``ENAMETOOLONG``...). The fd is blocking, as an
        ordinary ``open`` gives it."""
        fd = self._open_fd(relpath, self._how, _OPEN)
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "is a folder", relpath)
            if not stat.S_ISREG(st.st_mode):
                raise FileNotFoundError(errno.ENOENT, "not a regular file", relpath)
            os.set_blocking(fd, True)
            _open.learn_filesystem(fd)
            if self._local is None:
                self._local = _open.is_local(self.fd)
            return io.FileIO(fd, "r", closefd=True), st
        except BaseException:
            os.close(fd)
            raise

    def scandir_fd(self, relpath: str) -> int:
        """A descriptor of the folder at ``relpath`` beneath this one, for ``os.scandir``
        (the caller closes it). Same refusals as :meth:`open`; ``NotADirectoryError`` if it
        is not a folder. May wait: call it in a worker thread."""
        return self._open_fd(relpath, self._dir_how, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)

    def _open_fd(self, relpath: str, how: ctypes.Array[ctypes.c_char], flags: int) -> int:
        if self.fd < 0:
            raise ValueError("the folder is closed")
        name = os.fsencode(relpath)
        if b"\0" in name:
            raise OutsideFolder(errno.ENOENT, "a NUL byte in the path", relpath)
        if _open.available():
            fd = _open.openat2(self.fd, name, how)
            if fd >= 0:
                return fd
            err = ctypes.get_errno()
            if err not in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
                if err in _ESCAPES:
                    raise OutsideFolder(err, "leads outside the folder", relpath)
                raise OSError(err, os.strerror(err), relpath)
        return self._open_checked(name, relpath, flags)

    def _open_checked(self, name: bytes, relpath: str, flags: int) -> int:
        """Without ``openat2``: open relative to the folder, then check where the file is."""
        if name.startswith(b"/") or b".." in name.split(b"/"):
            raise OutsideFolder(errno.EXDEV, "leads outside the folder", relpath)
        flags |= 0 if self.follow_symlinks else os.O_NOFOLLOW
        try:
            fd = os.open(name, flags | os.O_NONBLOCK, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in _ESCAPES:  # O_NOFOLLOW met a symlink
                raise OutsideFolder(exc.errno, "leads outside the folder", relpath) from None
            raise
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            where = ""
        inside = self.path.rstrip("/") + "/"
        if not (where == self.path or where.startswith(inside)):
            os.close(fd)
            raise OutsideFolder(errno.EXDEV, "leads outside the folder", relpath)
        return fd


def _how(flags: int, resolve: int) -> ctypes.Array[ctypes.c_char]:
    """A ``struct open_how``; the kernel only reads it, so one buffer serves every call."""
    return ctypes.create_string_buffer(struct.pack("=QQQ", flags, 0, resolve), 24)
