"""``FileBody``: Quart's, whose file the connection can hand to the server; for
``send_from_directory`` (and so the static folders) opened beneath the folder."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from os import PathLike
from types import FrameType, TracebackType
from typing import NamedTuple

import quart.helpers
import quart.utils
from aiofiles import open as async_open
from quart.wrappers.response import FileBody as QuartFileBody
from werkzeug.exceptions import NotFound

import zcio
import zcio.asgi

__all__ = ["FileBody", "FolderRequest", "folder_request"]

# The code of the two Quart functions a FileBody is built under by send_from_directory:
# send_from_directory -> send_file -> response_class.file_body_class(path).
_SEND_FILE_CODE = quart.helpers.send_file.__code__
_SEND_FROM_DIRECTORY_CODE = quart.helpers.send_from_directory.__code__

# Names that cannot lead to a file to serve beneath the folder: a 404, as Quart answers a missing
# file (ENOTDIR: a file where a folder was expected on the way).
_NOT_FOUND_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG})


class FolderRequest(NamedTuple):
    """What a running ``send_from_directory`` call serves: its folder, and the size Quart's
    ``send_file`` took for the Content-Length (``None`` if unknown)."""

    directory: str
    size: int | None


def folder_request(frame: FrameType | None) -> FolderRequest | None:
    """What a ``send_from_directory`` call is serving, when ``frame`` is Quart's ``send_file``
    called by Quart's ``send_from_directory``; ``None`` otherwise.

    Quart passes ``file_body_class`` the joined path only, so the folder is read from the
    arguments of the ``send_from_directory`` call that is running (its frame's ``directory``),
    and the size from ``send_file``'s (``file_size``, the ``stat`` made for the Content-Length).
    Matched by code object, so nothing else is ever taken for it. No I/O, never raises."""
    if frame is None or frame.f_code is not _SEND_FILE_CODE:
        return None
    outer = frame.f_back
    if outer is None or outer.f_code is not _SEND_FROM_DIRECTORY_CODE:
        return None
    directory = outer.f_locals.get("directory")
    if directory is None:
        return None
    size = frame.f_locals.get("file_size")
    return FolderRequest(str(directory), size if isinstance(size, int) else None)


class FileBody(QuartFileBody):
    """Quart's ``FileBody`` (same constructor, ranges, chunk size and reads) that
    ``zcio_quart``'s connection can hand to the server, and that opens the files of
    ``send_from_directory`` (and of the static folders, served by it) beneath the folder.

    **Under send_from_directory**, every open of the file is made beneath a descriptor of the
    folder (:class:`zcio.Folder`, following the symlinks that stay inside it), so that a name
    leading out of the folder when it is opened (a symlink swapped in after Quart's ``safe_join``
    and ``is_file`` checks, a symlink pointing outside, a FIFO or a device) is never opened:

    - when the body is built, inside Quart's ``send_file``: the file is opened (and closed at
      once) to answer ``NotFound`` (a 404, through the app's error handlers, as Quart answers a
      missing file) for a name that cannot be served from beneath the folder; another
      ``OSError`` (a permission error) propagates, a 500. This open is made on the event loop,
      where Quart's ``send_file`` has just made four ``stat`` calls of the same path, and never
      waits for a FIFO or a device. ``size`` is that file's; if it is not the size Quart's
      ``send_file`` measured for the Content-Length (the name changed in between), ``NotFound``
      too: no response could promise the right length;
    - when it is sent (:meth:`open`, which :class:`zcio_quart.HTTPConnection` calls before the
      response starts, whichever path sends it): if the name no longer leads to a regular file
      beneath the folder by then, ``NotFound``, which the connection answers with a 404 before
      anything else is sent (a body entered without :meth:`open`, by another connection class,
      opens it then, after the start: the response is cut). Never a byte from outside the
      folder.

    **Any other path** (``send_file`` of a path) is opened by name, as Quart opens it.
    """

    folder: zcio.Folder | None = None
    """The folder of ``send_from_directory``, beneath which the file is opened."""
    relative: str = ""
    """The file's path relative to :attr:`folder`."""
    _file: io.FileIO | None = None

    def __init__(self, file_path: str | PathLike[str], *, buffer_size: int | None = None) -> None:
        request = folder_request(sys._getframe(1))
        if request is None:
            super().__init__(file_path, buffer_size=buffer_size)
            return
        self.file_path = quart.utils.file_path_to_path(file_path)
        if buffer_size is not None:
            self.buffer_size = buffer_size
        self.file = None
        self.file_manager = None
        self.relative = _relative(request.directory, self.file_path)
        with _not_found():
            self.folder = folder = _folder(request.directory)
            file, st = folder.open_cached(self.relative) or folder.open(self.relative)
        file.close()
        if request.size is not None and request.size != st.st_size:
            # Not the file Quart just measured for the Content-Length: the name changed
            # meanwhile (a swap). No response can promise the right length: as if missing.
            raise NotFound()
        self.size = st.st_size
        self.begin = 0
        self.end = self.size

    async def open(self) -> io.FileIO | None:
        """Open the file for sending, now, and keep it (for the server's message, or for
        Quart's reads when the body is entered); the file, or ``None`` when a path given to
        ``send_file`` cannot be opened (Quart's path then fails as Quart does). Once opened,
        again returns the same file. :meth:`close` closes it.

        Beneath :attr:`folder` for ``send_from_directory`` (on the event loop when the kernel
        has the path cached, else in a worker thread), where errors propagate: ``NotFound``
        for a name that no longer leads to a regular file beneath the folder, another
        ``OSError`` as it is. Else by path, as
        :func:`zcio.asgi.open_file` opens it. A cancellation while a worker thread opens it is
        taken after the open, with the file closed."""
        if self._file is not None:
            return self._file
        folder = self.folder
        if folder is None:
            try:
                opened = await zcio.asgi.open_file(self.file_path)
            except OSError:
                return None
            self._file = opened.file
            return self._file
        cached = folder.open_cached(self.relative)
        if cached is not None:
            self._file = cached[0]
            return self._file
        with _not_found():
            opened = await zcio.asgi.open_in_thread(_open_beneath, folder, self.relative)
        self._file = opened.file
        return self._file

    async def __aenter__(self) -> FileBody:
        """Quart's: the file open for reading at ``begin``; the file :meth:`open` opened, or
        opens now beneath the folder for ``send_from_directory`` (then read through aiofiles in
        worker threads, as Quart reads)."""
        if self._file is None and self.folder is None:
            await super().__aenter__()
            return self
        try:
            file = await self.open()
            assert file is not None
            self.file_manager = async_open(file.fileno(), mode="rb", closefd=False)
            self.file = await self.file_manager.__aenter__()
            await self.file.seek(self.begin)
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException, tb: TracebackType) -> None:
        try:
            await super().__aexit__(exc_type, exc_value, tb)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file :meth:`open` opened, if any (again is harmless). Closing a read-only
        regular file does not wait for the disk: done inline, where no cancellation can
        interrupt it."""
        file, self._file = self._file, None
        if file is not None:
            file.close()


# Folders by the directory send_from_directory was given, so that files are opened on the
# event loop once the kernel has their paths cached (zcio.Folder.open_cached). Bounded; a
# folder dropped from here is closed when the last body using it is.
_FOLDERS: dict[str, tuple[zcio.Folder, tuple[int, int]]] = {}
_MAX_FOLDERS = 64


def _folder(directory: str) -> zcio.Folder:
    """The :class:`zcio.Folder` of ``directory``: the one kept, if ``directory`` still names the
    folder it opened (one ``stat``: a folder replaced, or a symlink to it repointed, gets a new
    one), else a new one. ``OSError`` if it is not a folder."""
    st = os.stat(directory)
    kept = _FOLDERS.get(directory)
    if kept is not None and kept[1] == (st.st_dev, st.st_ino):
        return kept[0]
    folder = zcio.Folder(directory, follow_symlinks=True)
    held = os.fstat(folder.fd)
    if len(_FOLDERS) >= _MAX_FOLDERS:
        _FOLDERS.pop(next(iter(_FOLDERS)))
    _FOLDERS[directory] = (folder, (held.st_dev, held.st_ino))
    return folder


def _open_beneath(folder: zcio.Folder, relative: str) -> zcio.asgi.Opened:
    """:meth:`zcio.Folder.open`, as :class:`zcio.asgi.Opened` (for a worker thread)."""
    return zcio.asgi.Opened(*folder.open(relative))


def _relative(directory: str, path: PathLike[str]) -> str:
    """``path`` (which Quart joined to ``directory``) relative to ``directory``; no I/O."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(directory))
    if relative == os.curdir or relative.startswith(os.pardir):
        raise NotFound()
    return relative


@contextlib.contextmanager
def _not_found() -> Iterator[None]:
    """The errors of a name that cannot be served from beneath the folder, as ``NotFound``."""
    try:
        yield
    except (zcio.OutsideFolder, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound() from exc
    except OSError as exc:
        if exc.errno in _NOT_FOUND_ERRNOS:
            raise NotFound() from exc
        raise
