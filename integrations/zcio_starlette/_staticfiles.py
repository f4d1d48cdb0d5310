"""``StaticFiles``: Starlette's, serving every file through :class:`zcio_starlette.FileResponse`,
opened beneath its folder."""

from __future__ import annotations

import errno
import os

from starlette.datastructures import Headers
from starlette.responses import FileResponse as StarletteFileResponse, Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles as StarletteStaticFiles
from starlette.types import Receive, Scope, Send

import zcio
import zcio.asgi
from zcio.asgi import ZEROCOPYSEND

from ._responses import FileResponse
from ._sendpath import why_not_zerocopy

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
    #: The first folder's :class:`zcio.Folder`: the one a cached lookup opens beneath.
    _first: zcio.Folder | None = None

    #: The open-file cache (:class:`zcio.asgi.FileCache`): ``True`` (the default) for the
    #: thread's :func:`zcio.asgi.default_file_cache`, ``False`` for none, or a cache of your
    #: own. Set it on an instance, a subclass or the class (the constructor is Starlette's).
    cache: zcio.asgi.FileCache | bool = True

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        # Runs in a worker thread: the place to open the folders' descriptors (once).
        if self._folders is None and not self.follow_symlink:
            self._folders = _open_folders(self.all_directories)
            if self.all_directories:
                first = os.path.realpath(self.all_directories[0])
                self._first = self._folders.get(first)
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
        if self.cache is not False and self._first is not None:
            cached = await self._cached_response(path, scope)
            if cached is not None:
                return cached
        # The HTML mode's 404.html is built inside get_response with Starlette's FileResponse.
        return self._adopt(await super().get_response(path, scope))

    async def _cached_response(self, path: str, scope: Scope) -> Response | None:
        """The response from the open-file cache for a regular file found under ``path`` in
        the first folder with no symlink on the way (then Starlette's lookup would find the
        same file, at the same real path); ``None`` for anything else, which takes
        Starlette's lookup: a missing file, a folder, a symlink, a file of another folder,
        a ``Range`` request. No worker thread, no path walk and no header built on a hit."""
        if scope["method"] not in ("GET", "HEAD"):
            return None
        folder = self._first
        assert folder is not None
        cache = zcio.asgi.default_file_cache() if self.cache is True else self.cache
        assert cache is not False
        entry = await cache.get(path, folder=folder)
        if entry is None:
            return None
        headers: tuple[tuple[bytes, bytes], ...] | None = entry.memo.get(_MEMO)
        if headers is None:
            full_path = os.path.join(folder.path, path)
            # Starlette's own headers for this file, as its file_response would build them.
            built = StarletteFileResponse(full_path, stat_result=entry.stat)
            headers = entry.memo[_MEMO] = tuple(built.raw_headers)
        conditional = False
        for name, _ in scope["headers"]:
            if name == b"range":
                return None
            if name in _CONDITIONAL:
                conditional = True
        if conditional:
            response_headers = Headers(raw=list(headers))
            if self.is_not_modified(response_headers, Headers(scope=scope)):
                return NotModifiedResponse(response_headers)
        return _CachedFileResponse(entry, list(headers), (folder, path))

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


_MEMO = "zcio_starlette.StaticFiles"  # the key of Starlette's headers in CachedFile.memo
_CONDITIONAL = (b"if-none-match", b"if-modified-since")


class _CachedFileResponse(Response):
    """A whole file from the open-file cache: Starlette's status and headers, then the body
    from memory (any server, any middleware) or by ``zerocopysend`` from the cached fd, held
    until that message is sent. Where ``zerocopysend`` cannot reach the server, Starlette's
    own reads of the file opened beneath its folder (:class:`FileResponse`)."""

    def __init__(
        self,
        entry: zcio.asgi.CachedFile,
        raw_headers: list[tuple[bytes, bytes]],
        beneath: tuple[zcio.Folder, str],
    ) -> None:
        self.entry = entry
        self.status_code = 200
        self.background = None
        self.raw_headers = raw_headers
        self.beneath = beneath

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self.entry
        size = entry.size
        head = scope["method"] == "HEAD"
        if head or size == 0 or entry.body is not None:
            body = b"" if head else (entry.body or b"")
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if why_not_zerocopy(scope, send) is not None:
            folder, path = self.beneath
            fallback = FileResponse(os.path.join(folder.path, path), stat_result=entry.stat)
            fallback.beneath = self.beneath
            await fallback(scope, receive, send)
            return
        with entry:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send(
                {
                    "type": ZEROCOPYSEND,
                    "file": entry.file,
                    "offset": 0,
                    "count": size,
                    "more_body": False,
                }
            )


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
