"""``StaticFiles``: Starlette's, serving every file through :class:`zcio_starlette.FileResponse`,
opened beneath its folder."""

from __future__ import annotations

import errno
import os

from starlette.responses import FileResponse as StarletteFileResponse, Response
from starlette.staticfiles import StaticFiles as StarletteStaticFiles
from starlette.types import Scope

import zcio

from ._responses import FileResponse

__all__ = ["StaticFiles"]

# Names that cannot lead to a file to serve: a client's mistake (404), not the server's (500).
# EINVAL: realpath's readlink of a name that stopped being a symlink meanwhile (a race).
_NOT_FOUND_ERRNOS = frozenset({errno.ELOOP, errno.ENAMETOOLONG, errno.EINVAL})


class StaticFiles(StarletteStaticFiles):
    """Starlette's ``StaticFiles`` (same constructor, lookups, 304s, 404s and HTML mode) whose
    file responses are :class:`zcio_starlette.FileResponse`: zero-copy where the server and
    the middleware allow it, Starlette's own bytes otherwise.

    **Containment.** Starlette checks that a path's real path lies inside the folder, then
    opens the file again by name, so a symlink swapped in between the two is followed out of
    the folder. Here (with ``follow_symlink=False``, the default) the file is opened beneath a
    descriptor of the folder it was found in (:class:`zcio.Folder`): a name that meets a
    symlink, ``..`` or anything else leading out at open time gets a 404, and so does a name
    that is no longer a regular file (a FIFO or a device swapped in is never waited on). This
    holds on every path the response takes (``zerocopysend``, ``pathsend``, Starlette's
    reads). With ``follow_symlink=True``, symlinks leading out are served, as Starlette does.

    A symlink loop or an over-long name is a 404 (Starlette answers 500 for a loop).
    Errors and cancellation are the response's.
    """

    _folders: dict[str, zcio.Folder] | None = None

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        # Runs in a worker thread: the place to open the folders' descriptors (once).
        if self._folders is None and not self.follow_symlink:
            self._folders = _open_folders(self.all_directories)
        try:
            return super().lookup_path(path)
        except OSError as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                return "", None
            raise

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        return self._adopt(super().file_response(full_path, stat_result, scope, status_code))

    async def get_response(self, path: str, scope: Scope) -> Response:
        # The HTML mode's 404.html is built inside get_response with Starlette's FileResponse.
        return self._adopt(await super().get_response(path, scope))

    def folder_of(self, full_path: str | os.PathLike[str]) -> tuple[zcio.Folder, str] | None:
        """The folder that ``full_path`` (a path ``lookup_path`` returned) lies in, and the
        path relative to it; ``None`` with ``follow_symlink=True``, for a path in none of
        the folders, or before the first lookup. Asks nothing of the system."""
        for folder in (self._folders or {}).values():
            relative = folder.relative(full_path)
            if relative is not None:
                return folder, relative
        return None

    def _adopt(self, response: Response) -> Response:
        """The same response as a :class:`FileResponse` if Starlette built a plain one."""
        if type(response) is not StarletteFileResponse:
            return response  # a 304, a redirect, or already ours
        assert response.stat_result is not None  # StaticFiles always passes the stat it made
        adopted = FileResponse(
            response.path, status_code=response.status_code, stat_result=response.stat_result
        )
        adopted.beneath = self.folder_of(response.path)
        return adopted


def _open_folders(directories: list[str | os.PathLike[str]]) -> dict[str, zcio.Folder]:
    """A :class:`zcio.Folder` for each directory that exists, keyed by its real path."""
    folders: dict[str, zcio.Folder] = {}
    for directory in directories:
        try:
            folder = zcio.Folder(directory)
        except OSError:
            continue  # Starlette's lookups will find nothing there either
        folders.setdefault(folder.path, folder)
    return folders
