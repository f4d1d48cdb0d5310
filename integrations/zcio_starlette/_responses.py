"""``FileResponse``: Starlette's, with every file byte sent by ``http.response.zerocopysend``."""

from __future__ import annotations

import errno
import functools
import io
import os
import stat
from secrets import token_hex
from typing import NamedTuple

import starlette
from starlette.datastructures import MutableHeaders
from starlette.responses import (
    FileResponse as StarletteFileResponse,
    MalformedRangeHeader,
    PlainTextResponse,
    RangeNotSatisfiable,
    Response,
)
from starlette.types import Message, Receive, Scope, Send

import zcio
import zcio.asgi
from zcio.asgi import PATHSEND, ZEROCOPYSEND, NotARegularFileError, Opened

from ._sendpath import why_not_zerocopy

# Starlette 1.10 answers a Range header only on GET and HEAD; 1.9 on any method. Follow the
# Starlette installed, as a drop-in must.
_RANGES_ON_GET_ONLY = tuple(int(part) for part in starlette.__version__.split(".")[:2]) >= (1, 10)

__all__ = ["FileResponse"]


class FileResponse(StarletteFileResponse):
    """Starlette's ``FileResponse`` (same constructor, headers, statuses and range handling)
    that hands the file to the server instead of reading it in Python.

    When the server advertises ``http.response.zerocopysend`` (and no middleware known to lose
    that message wraps ``send``, see :func:`zcio_starlette.why_not_zerocopy`), a GET, POST or
    other non-HEAD request is answered with:

    - the whole file: ``http.response.start``, then one ``http.response.zerocopysend``
      (``offset=0``, ``count`` = the size behind Content-Length, ``more_body=False``);
    - a single range: the same, with the range's offset and length, after a 206 start;
    - several ranges: for each part an ``http.response.body`` with the part's boundary and
      headers, then a ``zerocopysend`` of the part's bytes (``more_body=True``); the closing
      boundary is the last ``http.response.body``;
    - an empty file: one empty ``http.response.body``.

    The response opens the file (in a worker thread unless the kernel has its path cached)
    before ``http.response.start`` and closes
    it after its last message, whatever happens: normal end, error in ``send``, cancellation,
    or client disconnect. The server must not touch the file once the ``send`` call that
    carried it has returned, raised or been cancelled.

    Everything else is Starlette's own code path, unchanged: HEAD requests, WebSocket denial
    responses, servers that advertise only ``http.response.pathsend`` (used for whole files,
    as Starlette does) or nothing (64 KiB reads in a worker thread), and responses behind
    ``GZipMiddleware`` or ``BaseHTTPMiddleware``.

    Disconnects are handled as Starlette handles them for ``pathsend``: the server moves the
    file's bytes, so the response does not listen on ``receive()`` while it sends (Starlette's
    listener for body streaming costs a task group per response, about as much as the whole
    rest of it). The server notices a client that goes away during a ``zerocopysend``: before
    ASGI 2.4 it returns and ignores the rest, and the background task runs; from 2.4 on,
    ``send`` raises ``OSError``, which propagates, and the background task does not run. A
    cancelled response has sent some, all or none of the file; the file is closed either way.

    Two differences from Starlette. A file that cannot be opened (no read permission, or
    removed since the ``stat_result`` given) raises before ``http.response.start``, where
    Starlette raises after it, so an error handler can still answer 500. A file that shrank
    below the size in the headers is left to the server, which must abort the connection
    (Starlette sends a short body; for multipart ranges both raise ``RuntimeError`` at the
    same point, after the same bytes). A given ``stat_result`` whose path has since become
    something other than a regular file is never opened to be read (a FIFO would wait for a
    writer): a folder raises Starlette's ``IsADirectoryError``, anything else its
    ``RuntimeError``, before ``http.response.start``.

    Files of :class:`zcio_starlette.StaticFiles` are opened beneath their folder
    (:attr:`beneath`), on every path including Starlette's own; one that is gone, no longer
    regular or now reached through a symlink gets a 404 instead. Such a file never goes by
    ``pathsend`` (the server would open the path again): on a server that offers only
    ``pathsend`` (granian), Starlette reads the file that was opened beneath the folder.
    """

    def set_stat_headers(self, stat_result: os.stat_result) -> None:
        """Starlette's Content-Length, Last-Modified and ETag for ``stat_result``, each only if
        not set already: the same values (Starlette's own method makes them), made once per
        file size and mtime instead of once per response."""
        raw = self.headers.raw  # the list MutableHeaders.setdefault would search and extend
        present = {name for name, _ in raw}
        for name, value in _stat_headers(stat_result.st_size, stat_result.st_mtime):
            if name not in present:
                raw.append((name, value))

    #: Set by :class:`zcio_starlette.StaticFiles`: the folder the file was found in and its
    #: path there. The file is then opened beneath that folder, never by its full path.
    beneath: tuple[zcio.Folder, str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"].upper() == "HEAD"  # headers only: nothing to hand over
            or why_not_zerocopy(scope, send) is not None
        ):
            if self.beneath is not None and scope.get("method", "GET").upper() != "HEAD":
                await self._call_starlette_beneath(scope, receive, send)
            else:
                await super().__call__(scope, receive, send)
            return

        if self.beneath is None and self.cache is not False:
            handled = await self._call_cached(scope, receive, send)
            if handled is not None:
                if handled and self.background is not None:
                    await self.background()
                return
        opened = self._open_cached()
        if opened is None:
            opened = await self._open_in_thread()
            if opened is None:  # no longer a regular file, or no longer inside its folder
                await self._gone(scope, receive, send)
                return
        try:
            ranges = self._ranges(scope, opened.size)
            if ranges is None:
                await self._send_whole(send, opened)
            elif isinstance(ranges, Response):
                await ranges(scope, receive, send)  # 400 or 416, and no background task
                return
            elif len(ranges) == 1:
                await self._send_range(send, opened, *ranges[0])
            else:
                await self._send_ranges(send, opened, ranges)
        finally:
            # Closing a read-only regular file does not wait for the disk: done inline, where
            # no cancellation can interrupt it.
            opened.file.close()
        if self.background is not None:
            await self.background()

    #: The open-file cache responses by path use (:class:`zcio.asgi.FileCache`): ``True`` (the
    #: default) for the thread's :func:`zcio.asgi.default_file_cache`, ``False`` for none, or
    #: a cache of your own. Set it on the class, a subclass or one response.
    cache: zcio.asgi.FileCache | bool = True

    async def _call_cached(self, scope: Scope, receive: Receive, send: Send) -> bool | None:
        """The response from the open-file cache: ``True`` when sent, ``False`` when a 400 or
        416 was sent instead (no background task then), ``None`` when the cache cannot serve
        it (not a regular file, a given ``stat_result`` of another file, a range of a file
        kept in memory): then the uncached way follows, with its errors. Called only where
        ``zerocopysend`` reaches the server (elsewhere the response is Starlette's own path);
        a file kept in memory goes out as one ``http.response.body``.

        A hit awaits nothing but ``send``. The cached fd is held (reference counted) until the
        last message carrying it has been sent, raised or been cancelled."""
        cache = zcio.asgi.default_file_cache() if self.cache is True else self.cache
        assert cache is not False
        entry = await cache.get(self.path)
        if entry is None:
            return None
        if entry.file is None and any(name == b"range" for name, _ in scope["headers"]):
            return None  # kept in memory: ranges are Starlette's (rare for files this small)
        cached, given = entry.stat, self.stat_result
        if given is None:
            self.set_stat_headers(cached)
        elif (given.st_dev, given.st_ino, given.st_size, given.st_mtime) != (
            cached.st_dev,
            cached.st_ino,
            cached.st_size,
            cached.st_mtime,
        ):
            return None  # the headers describe another file (or another state of it)
        size = cached.st_size
        ranges = self._ranges(scope, size)
        if isinstance(ranges, Response):
            await ranges(scope, receive, send)
            return False
        if entry.body is not None and ranges is None:
            start: Message = {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self.raw_headers,
            }
            await send(start)
            await send({"type": "http.response.body", "body": entry.body, "more_body": False})
            return True
        assert entry.file is not None
        opened = _Opened(entry.file, size, size)
        with entry:
            if ranges is None:
                await self._send_whole(send, opened)
            elif len(ranges) == 1:
                await self._send_range(send, opened, *ranges[0])
            else:
                await self._send_ranges(send, opened, ranges)
        return True

    async def _call_starlette_beneath(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's own reads, of the file opened beneath its folder (as
        ``/proc/self/fd/N``: the same inode whatever happens to the name meanwhile).

        Never ``pathsend``: it hands the server a path to open again, later, which is the
        race itself (and a server may open it after ``send`` returned, when the fd is
        closed or, worse, its number reused)."""
        opened = await self._open_in_thread()
        if opened is None:
            await self._gone(scope, receive, send)
            return
        kept = zcio.asgi.without_extensions(scope.get("extensions"), (PATHSEND,))
        if kept is not None:
            scope = {**scope, "extensions": kept}
        path, self.path = self.path, f"/proc/self/fd/{opened.file.fileno()}"
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.path = path
            opened.file.close()

    async def _gone(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The file found by the lookup is gone, or is no longer a regular file (a FIFO or a
        device swapped in: never opened to wait, never read), or would now be reached
        through a symlink or outside its folder: a 404 (only files of ``StaticFiles`` are
        opened beneath a folder)."""
        await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)

    def _open_cached(self) -> _Opened | None:
        """The open file and its sizes if the kernel could open it from its caches, on a
        local filesystem (:func:`zcio.open_cached_stat`): no thread, no waiting."""
        if self.beneath is not None:
            folder, relative = self.beneath
            opened = folder.open_cached(relative)
        else:
            opened = zcio.open_cached_stat(self.path)
        if opened is None:
            return None
        return self._sized(*opened)

    async def _open_in_thread(self) -> _Opened | None:
        """The open file and its sizes, opened in a worker thread (the path is not cached, or
        not on a local filesystem, or cannot be opened), with the stat Starlette does first
        folded into the same trip; ``None`` for a file of ``StaticFiles`` that is gone. The
        trip is shielded (:func:`zcio.asgi.open_in_thread`): a cancellation meanwhile is taken
        right after, with the file closed. Errors (missing file, not a file, no permission)
        raise here, before anything is sent, and leave nothing open.
        """
        check = self.stat_result is None
        try:
            if self.beneath is not None:
                opened = await zcio.asgi.open_in_thread(_open_beneath, *self.beneath)
            else:
                opened = await zcio.asgi.open_in_thread(_open_regular, self.path, check)
        except NotARegularFileError as exc:
            if not check and isinstance(exc, IsADirectoryError):
                # What Starlette's own open of a folder raises (but before anything is sent).
                error = errno.EISDIR
                raise IsADirectoryError(error, os.strerror(error), str(self.path)) from None
            raise RuntimeError(f"File at path {self.path} is not a file.") from None
        if opened is None:
            return None
        try:
            return self._sized(*opened)
        except BaseException:
            opened.close()
            raise

    def _sized(self, file: io.FileIO, opened_stat: os.stat_result) -> _Opened:
        """The sizes that go with ``file``: the headers' (the given stat_result's, or the open
        file's, which then also sets Starlette's stat headers) and the file's own.

        A file of ``StaticFiles`` that is not the one its lookup stat'ed (the name was
        swapped between the two, perhaps for a symlink to a file outside the folder) gets
        the stat headers of the file actually opened: no size, date or ETag of another file
        goes out."""
        # The full identity: a name replaced by rename can get a new file under the inode
        # number its old file just freed (tmpfs and ext4 reuse them at once).
        if (
            self.beneath is not None
            and self.stat_result is not None
            and zcio.asgi.identity(self.stat_result) != zcio.asgi.identity(opened_stat)
        ):
            self.raw_headers[:] = [  # in place: ``self.headers`` shares the list
                (name, value)
                for name, value in self.raw_headers
                if name not in (b"content-length", b"last-modified", b"etag")
            ]
            try:
                self.set_stat_headers(opened_stat)
            except BaseException:
                file.close()
                raise
            self.stat_result = opened_stat
        if self.stat_result is None:
            try:
                self.set_stat_headers(opened_stat)
            except BaseException:
                file.close()
                raise
            return _Opened(file, opened_stat.st_size, opened_stat.st_size)
        return _Opened(file, self.stat_result.st_size, opened_stat.st_size)

    def _ranges(self, scope: Scope, size: int) -> list[tuple[int, int]] | Response | None:
        """The ranges to send, with Starlette's rules: ``None`` for the whole file, the
        ranges, or the 400 or 416 response. Mirrors ``starlette.responses.FileResponse``."""
        http_range = http_if_range = None
        for name, value in scope["headers"]:  # ASGI header names are lowercase
            if name == b"range" and http_range is None:
                http_range = value.decode("latin-1")
            elif name == b"if-range" and http_if_range is None:
                http_if_range = value.decode("latin-1")
        if (
            http_range is None
            or self.status_code != 200
            or (_RANGES_ON_GET_ONLY and scope["method"].upper() not in ("GET", "HEAD"))
            or (http_if_range is not None and not self._should_use_range(http_if_range))
        ):
            return None
        try:
            ranges = self._parse_range_header(http_range, size)
        except MalformedRangeHeader as exc:
            return PlainTextResponse(exc.content, status_code=400)
        except RangeNotSatisfiable as exc:
            return PlainTextResponse(
                status_code=416, headers={"Content-Range": f"bytes */{exc.max_size}"}
            )
        return ranges or None

    async def _send_whole(self, send: Send, opened: _Opened) -> None:
        start: Message = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        await send(start)
        if opened.size == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send(_zerocopy(opened.file, 0, opened.size, more_body=False))

    async def _send_range(self, send: Send, opened: _Opened, start: int, end: int) -> None:
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{opened.size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        await send(_zerocopy(opened.file, start, end - start, more_body=False))

    async def _send_ranges(
        self, send: Send, opened: _Opened, ranges: list[tuple[int, int]]
    ) -> None:
        file, file_size, actual = opened.file, opened.size, opened.actual_size
        # The same boundary entropy as Starlette (and Firefox and Chrome): 13 random bytes.
        boundary = token_hex(13)
        content_length, part_header = self.generate_multipart(
            ranges, boundary, file_size, self.headers["content-type"]
        )
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-type"] = f"multipart/byteranges; boundary={boundary}"
        headers["content-length"] = str(content_length)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        separator = b""  # the CRLF after a part goes out with the next boundary: one message
        for start, end in ranges:
            body = separator + part_header(start, end)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            if end > actual:
                # Starlette reads what is there, then raises: the same bytes, the same error.
                if start < actual:
                    await send(_zerocopy(file, start, actual - start, more_body=True))
                raise RuntimeError(f"File at path {self.path} is shorter than expected.")
            await send(_zerocopy(file, start, end - start, more_body=True))
            separator = b"\r\n"
        closing = separator + f"--{boundary}--".encode("latin-1")
        await send({"type": "http.response.body", "body": closing, "more_body": False})


class _Opened(NamedTuple):
    file: io.FileIO
    size: int  # what the headers promise: the given stat_result's size, or the file's
    actual_size: int  # the open file's size (smaller if it shrank since the given stat)


def _zerocopy(file: io.FileIO, offset: int, count: int, *, more_body: bool) -> Message:
    return {
        "type": ZEROCOPYSEND,
        "file": file,
        "offset": offset,
        "count": count,
        "more_body": more_body,
    }


@functools.lru_cache(maxsize=1024)
def _stat_headers(size: int, mtime: float) -> tuple[tuple[bytes, bytes], ...]:
    """The headers Starlette's ``set_stat_headers`` adds for a file of this size and mtime
    (nothing else of the stat goes into them), as raw (name, value) pairs."""
    holder = Response()  # no body, no media type: starts with no headers at all
    holder.raw_headers = []
    stat_result = os.stat_result((0, 0, 0, 0, 0, 0, size, 0, int(mtime), 0, 0.0, mtime, 0.0))
    StarletteFileResponse.set_stat_headers(holder, stat_result)  # type: ignore[arg-type]
    return tuple(holder.raw_headers)


def _open_beneath(folder: zcio.Folder, relative: str) -> Opened | None:
    """Open ``relative`` beneath ``folder`` (runs in a worker thread): ``None`` when it is
    missing, not a regular file, or leads out of the folder; other errors raise."""
    try:
        return Opened(*folder.open(relative))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            return None
        raise


def _open_regular(path: str | os.PathLike[str], check: bool) -> Opened:
    """Open ``path`` for reading if it is a regular file (runs in a worker thread), with
    :func:`zcio.asgi.open_regular` (a FIFO swapped in meanwhile is not waited on: it raises
    :class:`~zcio.asgi.NotARegularFileError`).

    ``check``: stat the path first and raise Starlette's errors (missing file, not a file)
    without opening anything else.
    """
    if check:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise RuntimeError(f"File at path {path} does not exist.") from None
        if not stat.S_ISREG(st.st_mode):
            raise RuntimeError(f"File at path {path} is not a file.")
    return zcio.asgi.open_regular(path)
