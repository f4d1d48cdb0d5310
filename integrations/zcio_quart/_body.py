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

import quart.helpers
import quart.utils
from aiofiles import open as async_open
from quart.wrappers.response import FileBody as QuartFileBody
from werkzeug.exceptions import NotFound

import zcio
import zcio.asgi

__all__ = ["FileBody", "folder_request"]

# The code of the two Quart functions a FileBody is built under by send_from_directory:
# send_from_directory -> send_file -> response_class.file_body_class(path).
_SEND_FILE_CODE = quart.helpers.send_file.__code__
_SEND_FROM_DIRECTORY_CODE = quart.helpers.send_from_directory.__code__

# Names that cannot lead to a file to serve beneath the folder: a 404, as Quart answers a missing
# file (ENOTDIR: a file where a folder was expected on the way).
_NOT_FOUND_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.ENAMETOOLONG})


def folder_request(frame: FrameType | None) -> tuple[str, str] | None:
    """The folder and the name a ``send_from_directory`` call is serving, when ``frame`` is
    Quart's ``send_file`` called by Quart's ``send_from_directory``; ``None`` otherwise.

    Quart passes ``file_body_class`` the joined path only, so the folder is read from the
    arguments of the ``send_from_directory`` call that is running (its frame's ``directory``
    and ``file_name``). Matched by code object, so nothing else is ever taken for it. No I/O,
    never raises."""
    if frame is None or frame.f_code is not _SEND_FILE_CODE:
        return None
    outer = frame.f_back
    if outer is None or outer.f_code is not _SEND_FROM_DIRECTORY_CODE:
        return None
    directory = outer.f_locals.get("directory")
    file_name = outer.f_locals.get("file_name")
    if not isinstance(file_name, str) or directory is None:
        return None
    return str(directory), file_name


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
      waits for a FIFO or a device. ``size`` is that file's;
    - when it is sent (:meth:`open`), by ``zerocopysend`` or by Quart's own 8 KiB reads: if the
      name no longer leads to a file beneath the folder by then, the error propagates (before
      the response starts on the ``zerocopysend`` path: the server answers 500; after it on
      Quart's path: the connection is aborted). Never a byte from outside the folder.

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
        self.relative = _relative(request[0], self.file_path)
        with _not_found():
            self.folder = folder = _folder(request[0])
            file, st = folder.open_cached(self.relative) or folder.open(self.relative)
        file.close()
        self.size = st.st_size
        self.begin = 0
        self.end = self.size

    async def open(self) -> io.FileIO:
        """The file, opened for reading: beneath :attr:`folder` for ``send_from_directory``
        (on the event loop when the kernel has the path cached, else in a worker thread), else
        by path as :func:`zcio.asgi.open_file` opens it. The caller closes it.

        Raises ``OSError`` (for a name that no longer leads to a regular file beneath the
        folder: ``FileNotFoundError``, :class:`zcio.OutsideFolder`). A cancellation while a
        worker thread opens it is taken after the open, with the file closed."""
        folder = self.folder
        if folder is None:
            return (await zcio.asgi.open_file(self.file_path)).file
        cached = folder.open_cached(self.relative)
        if cached is not None:
            return cached[0]
        return (await zcio.asgi.open_in_thread(_open_beneath, folder, self.relative)).file

    async def __aenter__(self) -> FileBody:
        """Quart's: the file open for reading at ``begin``, opened by :meth:`open` beneath the
        folder for ``send_from_directory`` (then read through aiofiles in worker threads, as
        Quart reads)."""
        if self.folder is None:
            await super().__aenter__()
            return self
        self._file = await self.open()
        try:
            self.file_manager = async_open(self._file.fileno(), mode="rb", closefd=False)
            self.file = await self.file_manager.__aenter__()
            await self.file.seek(self.begin)
        except BaseException:
            self._close()
            raise
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException, tb: TracebackType) -> None:
        try:
            await super().__aexit__(exc_type, exc_value, tb)
        finally:
            self._close()

    def _close(self) -> None:
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
