"""``FileBody``: Quart's, holding the file it will send; for ``send_from_directory`` (and so the
static folders) opened beneath the folder."""

from __future__ import annotations

import errno
import io
import os
import sys
import weakref
from os import PathLike
from types import FrameType, TracebackType

import quart.helpers
import quart.utils
from aiofiles import open as async_open
from quart.wrappers.response import FileBody as QuartFileBody
from werkzeug.exceptions import NotFound

import zcio

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

    **Under send_from_directory**, the file is opened when the body is built, inside Quart's
    ``send_file``, beneath a descriptor of the folder (:class:`zcio.Folder`, following symlinks
    that stay inside it): a name that leads out of the folder when it is opened (a symlink
    swapped in after Quart's ``safe_join`` and ``is_file`` checks, a symlink pointing outside,
    ``..`` through a symlink), that is no longer a regular file, or that vanished, raises
    ``NotFound`` (404, through the app's error handlers, as Quart answers a missing file). Other
    ``OSError`` (a permission error) propagates: a 500. The open is made on the event loop,
    where Quart's ``send_file`` has just made four ``stat`` of the same path; it never waits for
    a FIFO or a device. Every path the body takes afterwards sends from that file: the server's
    ``zerocopysend``, or Quart's own 8 KiB reads (through aiofiles, as Quart reads). ``size``
    is that file's.

    **Any other path** (``send_file`` of a path) is opened when it is sent, by name, as Quart
    opens it.

    The file held is closed when the body has been sent (by either path), and, if the body is
    never sent (a 304, an ``after_request`` that replaced it, an error), when the body is
    dropped.
    """

    def __init__(self, file_path: str | PathLike[str], *, buffer_size: int | None = None) -> None:
        request = folder_request(sys._getframe(1))
        self.folder = request[0] if request is not None else None
        self._file: io.FileIO | None = None
        if request is None:
            super().__init__(file_path, buffer_size=buffer_size)
            return
        self.file_path = quart.utils.file_path_to_path(file_path)
        if buffer_size is not None:
            self.buffer_size = buffer_size
        self.file = None
        self.file_manager = None
        file, st = _open_beneath(request[0], self.file_path)
        self._file = file
        # Dropped unsent: closed with the body, quietly (a FileIO left to the collector warns).
        weakref.finalize(self, file.close)
        self.size = st.st_size
        self.begin = 0
        self.end = self.size

    def take_file(self) -> io.FileIO | None:
        """The file opened beneath the folder, handed over to the caller (who closes it);
        ``None`` for a body of ``send_file`` of a path, or if it was taken already."""
        file, self._file = self._file, None
        return file

    async def __aenter__(self) -> FileBody:
        """Quart's: the file open for reading at ``begin``; the one opened beneath the folder
        if there is one (read through aiofiles in worker threads, as Quart reads)."""
        if self._file is None:
            await super().__aenter__()
            return self
        self.file_manager = async_open(self._file.fileno(), mode="rb", closefd=False)
        self.file = await self.file_manager.__aenter__()
        await self.file.seek(self.begin)
        return self

    async def __aexit__(self, exc_type: type, exc_value: BaseException, tb: TracebackType) -> None:
        try:
            if self.file_manager is not None:
                await super().__aexit__(exc_type, exc_value, tb)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file opened beneath the folder, if any (again is harmless)."""
        file = self.take_file()
        if file is not None:
            file.close()


def _open_beneath(directory: str, path: PathLike[str]) -> tuple[io.FileIO, os.stat_result]:
    """The regular file at ``path``, opened beneath ``directory`` (which Quart joined it to),
    and its fstat. ``NotFound`` for a name that cannot be served from beneath the folder."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(directory))
    if relative == os.curdir or relative.startswith(os.pardir):
        raise NotFound()
    try:
        with zcio.Folder(directory, follow_symlinks=True) as folder:
            return folder.open(relative)
    except (zcio.OutsideFolder, IsADirectoryError, NotADirectoryError) as exc:
        raise NotFound() from exc
    except OSError as exc:
        if exc.errno in _NOT_FOUND_ERRNOS:
            raise NotFound() from exc
        raise
