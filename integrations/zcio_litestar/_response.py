"""``ASGIFileResponse`` and ``File``: Litestar's, with the body handed to the server."""

from __future__ import annotations

import functools
import io
import os
import stat
from email.utils import formatdate
from inspect import CORO_CREATED, getcoroutinestate, iscoroutine
from typing import TYPE_CHECKING, Any

from litestar.exceptions import InternalServerException, NotAuthorizedException
from litestar.file_system import BaseLocalFileSystem, FileSystemAdapter
from litestar.response.file import (
    ASGIFileResponse as LitestarASGIFileResponse,
    File as LitestarFile,
    async_file_iterator,
    create_etag_for_file,
)

import zcio
import zcio.asgi
from zcio.asgi import PATHSEND, ZEROCOPYSEND, NotARegularFileError

from ._chain import why_not

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from litestar.app import Litestar
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures.cookie import Cookie
    from litestar.enums import MediaType
    from litestar.types import Receive, Scope, Send, TypeEncodersMap
    from litestar.types.file_types import FileInfo

__all__ = ["ASGIFileResponse", "File", "adopt", "file_info", "stat_info", "why_not_zerocopy"]

LOCAL_OPEN = BaseLocalFileSystem.open
LOCAL_INFO = BaseLocalFileSystem.info
_ADAPTER_INFO_CODE = FileSystemAdapter.info.__code__


def why_not_zerocopy(scope: Mapping[str, Any], send: Callable[..., Any]) -> str | None:
    """Why a file response called with ``scope`` and ``send`` must not send
    ``http.response.zerocopysend``; ``None`` when it may.

    It may when the scope is HTTP, the server advertises the extension in
    ``scope["extensions"]``, and none of the middlewares known to need the body bytes wraps
    ``send`` (Litestar's compression, response cache, logging and Prometheus middlewares, and
    Starlette's GZip and BaseHTTP middlewares, if an app mounts those). Never raises; never
    awaits.
    """
    return why_not(scope, send, ZEROCOPYSEND)


class ASGIFileResponse(LitestarASGIFileResponse):
    """Litestar's ``ASGIFileResponse`` (same constructor, headers, statuses and errors) that
    hands the file to the server instead of reading it in worker threads.

    For a body-carrying response (not HEAD, not 1xx/204/304) of a file on Litestar's local
    file system (``BaseLocalFileSystem``, or a subclass that keeps its ``open``):

    - when the server advertises ``http.response.zerocopysend`` and no middleware that needs
      the body wraps ``send`` (:func:`zcio_litestar.why_not_zerocopy`): Litestar's own
      ``http.response.start`` (the same ``file_info`` lookup and headers), then the file,
      opened after the start as Litestar opens it, in one ``zerocopysend`` (``offset=0``,
      ``count`` = the Content-Length, ``more_body=False``); an empty file is one empty
      ``http.response.body``;
    - else, when the server advertises ``http.response.pathsend`` under the same conditions:
      the start, then one ``pathsend`` of the file's absolute path (the whole file, as Litestar
      sends it); never for the static files router's files, whose path the server would open
      again after the router checked it (Litestar's path then);
    - else Litestar's own path, unchanged: reads of ``chunk_size`` in worker threads.

    Under the same conditions a HEAD request gets Litestar's start and one empty body
    message: Litestar sends a ``File`` returned by a ``@head`` handler with its whole body
    (only the static files router marks its responses as HEAD responses), which every server
    drops for HEAD, so the client sees the same.

    Other file systems (fsspec, your own ``FileSystemProtocol``) always take Litestar's path:
    their ``open`` decides what the bytes are. Litestar has no Range support for files, and
    neither has this class: a ``Range`` header is ignored and the whole file sent, as Litestar
    does.

    The file is opened on the event loop when the kernel has its path cached on a local
    filesystem (:func:`zcio.open_cached_stat`), otherwise in a worker thread; errors are
    Litestar's (``NotAuthorizedException`` for a permission error, ``InternalServerException``
    for another ``OSError``), raised at the same point, after the start. The file is closed
    after the message that carried it, whatever happens: normal end, an error from ``send``,
    cancellation, client disconnect. A cancelled response has sent some, all or none of the
    file. The server notices a client that goes away (the response does not listen on
    ``receive()`` meanwhile, where Litestar's streaming does): before ASGI 2.4 its ``send``
    returns and the background task runs, as after Litestar's own disconnect handling; from
    2.4 on ``send`` raises ``OSError``, which propagates. A file that shrank after its size
    went into the headers is the server's to abort (Litestar sends a short body); one that
    grew is sent to the promised size (Litestar would send more than Content-Length).
    """

    #: The file the static files router opened beneath its directory, for this response to
    #: send and close (:class:`zcio_litestar.StaticFiles`): sent by ``zerocopysend`` or
    #: Litestar's reads, never by ``pathsend``, never opened again by its name.
    opened: io.FileIO | None = None
    #: The open-file cache's entry :attr:`opened` belongs to, held by the router for this
    #: response: released after the last message, never closed (the cache closes it).
    cached: zcio.asgi.CachedFile | None = None

    def _done_with(self, file: io.FileIO) -> None:
        cached = self.cached
        if cached is not None and file is cached.file:
            self.cached = None
            cached.release()
        else:
            file.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        opened = self.opened
        message = self._file_message(scope, send)
        if message is None:
            try:
                await super().__call__(scope, receive, send)  # send_body reads ``opened``
            finally:
                if opened is not None:
                    self._done_with(opened)
            return
        head = scope.get("method") == "HEAD"
        if opened is not None:
            file: io.FileIO | None = opened
        else:
            file = self._open_early() if message == ZEROCOPYSEND and not head else None
        try:
            await self.start_response(send=send)
            if head:
                # Litestar leaves is_head_response False for a File from a @head handler and
                # reads the whole file for a body every server drops: the headers are the same.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif message == ZEROCOPYSEND:
                await self._send_zerocopy(send, receive, file)
            else:
                pathsend: Any = {"type": PATHSEND, "path": _absolute(self.file_path)}
                await send(pathsend)
        finally:
            if file is not None:
                # Closing a read-only regular file does not wait for the disk: done inline,
                # where no cancellation can interrupt it.
                self._done_with(file)
        await self.after_response()

    def _open_early(self) -> io.FileIO | None:
        """The open file, before the start, when the kernel has its path cached on a local
        filesystem (:func:`zcio.open_cached_stat`, no waiting) and Litestar was about to look
        it up with ``BaseLocalFileSystem.info``: that lookup (a stat and an lstat, each in a
        worker thread) is then made from the open file's fstat and one ``lstat`` of a path the
        kernel just resolved from its caches, to the same ``FileInfo``. A symbolic link keeps
        Litestar's lookup (which also reads the link). ``None`` otherwise: nothing opened."""
        info = self.file_info
        if not (
            iscoroutine(info)
            and info.cr_code is _ADAPTER_INFO_CODE
            and getcoroutinestate(info) == CORO_CREATED
            and type(self.adapter.file_system).info is LOCAL_INFO
        ):
            return None
        path = os.fspath(self.file_path)
        opened = zcio.open_cached_stat(path)
        if opened is None:
            return None
        file, st = opened
        try:
            quick = file_info(path, st)
        except BaseException:
            file.close()
            raise
        if quick is not None:
            info.close()  # never awaited: closed, so that Python does not warn about it
            self.file_info = quick
            self._zcio_quick = True
        return file

    #: Whether ``file_info`` was made by :meth:`_open_early` (then a plain file's, its mtime a
    #: float): :meth:`start_response` may make Litestar's headers from it the quick way.
    _zcio_quick = False

    async def start_response(self, send: Send) -> None:
        """Litestar's ``start_response``: the same headers, and for a file looked up on the
        loop, made once per path, size and mtime (Litestar formats the date and hashes the path
        for every response) and added without Litestar's case-folding scans."""
        if not self._zcio_quick:
            await super().start_response(send=send)
            return
        info: Any = self.file_info
        size = info["size"]
        self.content_length = size
        raw = self.headers.headers  # names added by Litestar are lowercase already
        present = {name for name, _ in raw}
        length, modified, etag = _stat_headers(str(self.file_path), size, info["mtime"])
        if b"content-length" not in present:
            raw.append((b"content-length", length))
        if b"last-modified" not in present:
            raw.append((b"last-modified", modified))
        if b"etag" not in present:
            raw.append((b"etag", self.etag.to_header().encode("latin-1") if self.etag else etag))
        start: Any = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.encode_headers(),
        }
        await send(start)

    def _file_message(self, scope: Scope, send: Send) -> str | None:
        """The message that may carry this response's body, or ``None`` for Litestar's path."""
        status = self.status_code
        if (
            self.is_head_response
            or status < 200
            or status in (204, 304)
            or type(self.adapter.file_system).open is not LOCAL_OPEN
        ):
            return None
        if why_not(scope, send, ZEROCOPYSEND) is None:
            return ZEROCOPYSEND
        if self._zcio_pathsend and self.opened is None and why_not(scope, send, PATHSEND) is None:
            return PATHSEND
        return None

    #: Whether the body may go by ``pathsend``: not for the static files router's responses
    #: (:func:`adopt` with ``pathsend=False``), whose path the server would open again, later,
    #: after the router checked it (a symlink swapped in meanwhile would be followed).
    _zcio_pathsend = True

    async def send_body(self, send: Send, receive: Receive) -> None:
        """Litestar's ``send_body``; for a file the router opened (:attr:`opened`), Litestar's
        reads of that file, through ``/proc/self/fd``: the same inode, whatever happened to
        its name since (the headers, its ETag included, are made from the name already)."""
        opened = self.opened
        if opened is not None and not opened.closed:
            self.file_path = f"/proc/self/fd/{opened.fileno()}"
            self.iterator = async_file_iterator(
                file_path=self.file_path, chunk_size=self.chunk_size, adapter=self.adapter
            )
        await super().send_body(send=send, receive=receive)

    async def _send_zerocopy(self, send: Send, receive: Receive, early: io.FileIO | None) -> None:
        """The body, by one ``zerocopysend`` of the file ``early`` (opened before the start),
        or of the file opened now, as Litestar opens it after the start."""
        size = self.content_length
        if size == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        file = early if early is not None else await self._open()
        if file is None:  # no longer a regular file: Litestar's own reads, as it would
            await LitestarASGIFileResponse.send_body(self, send=send, receive=receive)
            return
        try:
            message: Any = {
                "type": ZEROCOPYSEND,
                "file": file,
                "offset": 0,
                "count": size,
                "more_body": False,
            }
            await send(message)
        finally:
            if file is not early:  # early is closed by the caller
                file.close()

    async def _open(self) -> io.FileIO | None:
        """The file, or ``None`` if it is no longer a regular file: opened on the event loop
        when the kernel has its path cached, else in a worker thread
        (:func:`zcio.asgi.open_file`; a cancellation meanwhile is taken right after the open,
        with the file closed). Errors are Litestar's ``FileSystemAdapter.open``'s."""
        path = self.file_path
        try:
            opened = await zcio.asgi.open_file(os.fspath(path), opener=_open_regular)
        except NotARegularFileError:
            return None
        except PermissionError as exc:
            raise NotAuthorizedException(
                f"failed to open {path} due to missing permissions"
            ) from exc
        except OSError as exc:
            raise InternalServerException from exc
        return opened.file


@functools.lru_cache(maxsize=1024)
def _stat_headers(path: str, size: int, mtime: float) -> tuple[bytes, bytes, bytes]:
    """Litestar's Content-Length, Last-Modified and (generated) ETag values for this file."""
    return (
        str(size).encode("latin-1"),
        formatdate(mtime, usegmt=True).encode("latin-1"),
        create_etag_for_file(path=path, modified_time=mtime, file_size=size).encode("latin-1"),
    )


def file_info(path: str, st: os.stat_result) -> FileInfo | None:
    """``BaseLocalFileSystem.info(path)``'s result for the regular file at ``path`` just opened
    from the kernel's caches, whose fstat is ``st``: made from ``st`` and one ``lstat`` (the
    path was just resolved from the caches: nothing to wait for). ``None`` for a symbolic link,
    whose info Litestar also reads the link for: ask Litestar then."""
    if stat.S_ISLNK(os.lstat(path).st_mode):
        return None
    return stat_info(path, st)


def stat_info(path: str, st: os.stat_result) -> FileInfo:
    """``BaseLocalFileSystem.info(path)``'s result made from the ``fstat`` of the regular file
    open at ``path`` (``islink`` False: the file, not how it was reached)."""
    return {
        "created": st.st_ctime,
        "gid": st.st_gid,
        "ino": st.st_ino,
        "islink": False,
        "mode": st.st_mode,
        "mtime": st.st_mtime,
        "name": path,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "type": "file",
        "uid": st.st_uid,
    }


def _absolute(path: Any) -> str:
    """The absolute path ``pathsend`` needs (relative to the working directory, as ``open``)."""
    return os.path.abspath(os.fspath(path))  # type: ignore[no-any-return]


#: What the worker thread runs to open a file that is not cached (a name of this module's, so
#: that a test can make the open fail).
_open_regular = zcio.asgi.open_regular


def adopt(response: LitestarASGIFileResponse, *, pathsend: bool = True) -> ASGIFileResponse:
    """``response``, a response Litestar built, as a :class:`ASGIFileResponse`: the same
    object (Litestar's constructor ran as it is), its class switched to this module's. Only
    Litestar's own class is switched (a subclass of it may have its own ``__call__``).
    ``pathsend=False``: never by ``pathsend`` (the router's files)."""
    if type(response) is LitestarASGIFileResponse:
        response.__class__ = ASGIFileResponse
        if not pathsend:
            response._zcio_pathsend = False  # type: ignore[attr-defined]
    return response  # type: ignore[return-value]


class File(LitestarFile):
    """Litestar's ``File`` (same constructor, arguments and behaviour) whose ASGI response is
    :class:`zcio_litestar.ASGIFileResponse`: zero-copy where the server, the file system and
    the middleware allow it, Litestar's own bytes otherwise."""

    __slots__ = ()

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        cookies: Iterable[Cookie] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIFileResponse:
        """Litestar's ``File.to_asgi_response``, with the result adopted (:func:`adopt`)."""
        return adopt(
            super().to_asgi_response(
                app,
                request,
                background=background,
                encoded_headers=encoded_headers,
                cookies=cookies,
                headers=headers,
                is_head_response=is_head_response,
                media_type=media_type,
                status_code=status_code,
                type_encoders=type_encoders,
            )
        )
