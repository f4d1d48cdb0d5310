"""``file()`` and ``file_stream()`` with Sanic's signatures and headers, whose bodies go by
``zcio.send_file`` on plaintext HTTP/1.1.

The plug is at the response, not the protocol: Sanic rewrites some protocol methods at startup
(TouchUp), and a response object is what every route already hands back. The response holds the
open file (opened by ``file()``, so a missing file fails in the handler as it does in Sanic);
when Sanic sends it, the headers (with Content-Length) go through Sanic's own ``Http.send``,
which queues them in the transport; ``zcio.send_file`` then sends the file from the transport's
socket once those bytes are out, and Sanic's ``response_bytes_left`` is brought down by what was
sent before Sanic's own ``send`` ends the response, so keep-alive goes on as after any response.

Everywhere else (TLS, HTTP/3, ASGI mode, an app with ``http.lifecycle.send`` signal handlers,
a HEAD request) the body is Sanic's own path: the same headers, then the file read in bounded
chunks in a worker thread and given to Sanic's ``send``. The whole file is never in memory.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from email.utils import formatdate
from mimetypes import guess_type
from pathlib import PurePath
from typing import Any

import anyio
from sanic.compat import Header
from sanic.exceptions import RequestCancelled, ServerError
from sanic.helpers import Default, _default, has_message_body
from sanic.http.http1 import Http
from sanic.models.protocol_types import Range
from sanic.response import HTTPResponse
from sanic.response.convenience import guess_content_type, validate_file
from sanic.response.types import ResponseStream

import zcio
import zcio.asgi

__all__ = ["ZeroCopyFile", "ZeroCopyFileStream", "file", "file_stream", "open_file"]

#: Bytes read per worker-thread call on Sanic's own path (``file()``; ``file_stream()`` uses
#: its ``chunk_size``).
CHUNK = 64 * 1024
#: Bytes per ``send_file`` call on the zero-copy path: between two calls Sanic's clock for the
#: response timeout is reset, as its own ``send`` does on every write.
SLICE = 16 * 1024 * 1024
#: Bodies up to this size leave with their headers in one segment (:func:`corked`).
CORK_MAX = 256 * 1024


async def open_file(location: str | PurePath) -> zcio.asgi.Opened:
    """Open the regular file at ``location``: on the event loop when the kernel has the path
    cached (:func:`zcio.open_cached_stat`), else in a worker thread. Raises the open's
    ``OSError`` (``FileNotFoundError``, ``IsADirectoryError``...). On cancellation nothing is
    left open."""
    opened = zcio.open_cached_stat(location)
    if opened is not None:
        return zcio.asgi.Opened(*opened)
    return await zcio.asgi.open_in_thread(zcio.asgi.open_regular, location, abandon_on_cancel=True)


def zero_copy_stream(stream: Any) -> Any:
    """Sanic's HTTP/1.1 ``Http`` object if the zero-copy path may serve this response: a
    plaintext connection, no ``http.lifecycle.send`` signal handler (they expect to see the
    body), the response not started. ``None`` otherwise (Sanic's own path)."""
    if not isinstance(stream, Http) or stream.head_only:
        return None
    protocol = stream.protocol
    transport = getattr(protocol, "transport", None)
    if transport is None or transport.is_closing():
        return None
    if transport.get_extra_info("sslcontext") is not None:
        return None
    if any(route.name == "http.lifecycle.send" for route in protocol.app.signal_router.routes):
        return None
    return stream


@contextlib.contextmanager
def corked(stream: Any, count: int) -> Iterator[None]:
    """For a small body: ``TCP_CORK`` on the socket while the headers and the file go in, so
    they leave in one segment, as Sanic's single write of headers and body does (nginx's
    ``tcp_nopush``). Two ``setsockopt`` calls; a socket that refuses them is left alone."""
    sock = stream.protocol.transport.get_extra_info("socket") if count <= CORK_MAX else None
    try:
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    except (OSError, AttributeError):
        sock = None
    try:
        yield
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


async def send_range(stream: Any, file: zcio.asgi.Opened, offset: int, count: int) -> None:
    """Send ``count`` bytes of ``file`` from ``offset`` into the connection of ``stream`` (an
    ``Http`` whose headers are queued), in slices, after the transport's buffered bytes.

    Errors: a file that ended early aborts the connection and raises ``ServerError`` (the
    Content-Length or chunk size promised cannot be kept); a peer that went away raises
    ``RequestCancelled`` as Sanic's own ``send`` does. Cancellation: some, all or none of the
    bytes were sent; the connection is aborted, since the client cannot tell where the body
    stopped."""
    protocol = stream.protocol
    transport = protocol.transport
    fd = file.file.fileno()
    done = 0
    try:
        while done < count:
            size = min(SLICE, count - done)
            done += await zcio.send_file(transport, fd, offset=offset + done, count=size)
            if hasattr(protocol, "_time"):
                protocol._time = time.monotonic()  # what Sanic's send sets on every write
    except zcio.IncompleteTransfer as exc:
        transport.abort()
        raise ServerError("File ended before the promised length was sent") from exc
    except (zcio.BrokenDestination, zcio.ClosedDestination) as exc:
        transport.abort()
        raise RequestCancelled() from exc
    except BaseException:
        transport.abort()
        raise


async def read_chunks(file: zcio.asgi.Opened, offset: int, count: int, chunk: int) -> Any:
    """The ``count`` bytes of ``file`` from ``offset``, ``chunk`` bytes per worker-thread
    read; a file that ends early raises ``ServerError`` after the bytes it had."""
    fd = file.file.fileno()
    end = offset + count
    while offset < end:
        data = await anyio.to_thread.run_sync(os.pread, fd, min(chunk, end - offset), offset)
        if not data:
            raise ServerError("File ended before the promised length was sent")
        offset += len(data)
        yield data


def span(_range: Range | None, size: int) -> tuple[int, int]:
    """The offset and length to send: the whole file, or the range cut at the end of the
    file (what Sanic's ``read(_range.size)`` returns; never more than the range)."""
    if not _range:
        return 0, size
    offset = int(_range.start or 0)
    return offset, max(0, min(int(_range.size or 0), size - offset))


class ZeroCopyFile(HTTPResponse):
    """What :func:`file` returns: Sanic's ``HTTPResponse`` whose body is ``count`` bytes of an
    open file from ``offset``, sent when Sanic sends the response (see the module's docstring).
    ``body`` is empty; a middleware that sets one gets it sent instead of the file. The file
    is closed once sent, or when the response is dropped."""

    __slots__ = ("_zcio_count", "_zcio_file", "_zcio_offset")

    def __init__(
        self,
        opened: zcio.asgi.Opened,
        offset: int,
        count: int,
        status: int = 200,
        headers: Header | dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(None, status=status, headers=headers, content_type=content_type)
        self._zcio_file: zcio.asgi.Opened | None = opened
        self._zcio_offset = offset
        self._zcio_count = count

    async def send(self, data: Any = None, end_stream: bool | None = None) -> None:
        opened = self._zcio_file
        if opened is None or data or self.body or self.stream is None:
            await super().send(data, end_stream)
            return
        self._zcio_file = None
        with opened:
            if not has_message_body(self.status):  # type: ignore[no-untyped-call]
                await super().send(data, end_stream)  # Sanic drops the body, as for its own
                return
            self.headers["content-length"] = self._zcio_count
            stream = zero_copy_stream(self.stream)
            if stream is None:
                await self._send_own(opened)
                return
            with corked(stream, self._zcio_count):
                await stream.send(b"", end_stream=False)  # the headers, into the transport
                if stream.response_func != stream.http1_response_normal:
                    # Not framed by Content-Length (the request ended meanwhile): Sanic decides.
                    await super().send(b"", True)
                    return
                await send_range(stream, opened, self._zcio_offset, self._zcio_count)
            stream.response_bytes_left -= self._zcio_count
            await stream.send(b"", end_stream=True)  # Sanic's own end: keep-alive, next request

    async def _send_own(self, opened: zcio.asgi.Opened) -> None:
        """Sanic's own path: the same headers, the body in bounded chunks through its send."""
        if not self._zcio_count or getattr(self.stream, "head_only", False):
            await super().send(b"", True)
            return
        async for data in read_chunks(opened, self._zcio_offset, self._zcio_count, CHUNK):
            await super().send(data, False)
        await super().send(b"", True)

    def __del__(self) -> None:
        opened = getattr(self, "_zcio_file", None)
        if opened is not None:
            opened.close()


async def file(
    location: str | PurePath,
    status: int = 200,
    request_headers: Header | None = None,
    validate_when_requested: bool = True,
    mime_type: str | None = None,
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    last_modified: datetime | float | int | Default | None = _default,
    max_age: float | int | None = None,
    no_store: bool | None = None,
    _range: Range | None = None,
) -> HTTPResponse:
    """Sanic's ``sanic.response.file``, same arguments, same status and headers; the body is
    sent with ``zcio.send_file`` (see the module's docstring) and never read into memory.

    Errors as Sanic's: the open's ``OSError`` (``FileNotFoundError``...) is raised here. On
    cancellation nothing is left open."""
    return await file_response(
        location,
        None,
        status=status,
        request_headers=request_headers,
        validate_when_requested=validate_when_requested,
        mime_type=mime_type,
        headers=headers,
        filename=filename,
        last_modified=last_modified,
        max_age=max_age,
        no_store=no_store,
        _range=_range,
    )


async def file_response(
    location: str | PurePath,
    opened: zcio.asgi.Opened | None,
    *,
    status: int = 200,
    request_headers: Header | None = None,
    validate_when_requested: bool = True,
    mime_type: str | None = None,
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    last_modified: datetime | float | int | Default | None = _default,
    max_age: float | int | None = None,
    no_store: bool | None = None,
    _range: Range | None = None,
) -> HTTPResponse:
    """:func:`file` for a file already open (``opened``, which it then owns), or by path."""
    try:
        if isinstance(last_modified, datetime):
            last_modified = last_modified.replace(microsecond=0).timestamp()
        elif isinstance(last_modified, Default):
            if opened is None:
                opened = await open_file(location)
            last_modified = opened.stat.st_mtime

        if validate_when_requested and request_headers is not None and last_modified:
            response = await validate_file(request_headers, last_modified)
            if response:
                if opened is not None:
                    opened.close()
                return response

        headers = headers or {}
        if last_modified:
            headers.setdefault("Last-Modified", formatdate(last_modified, usegmt=True))
        if filename:
            headers.setdefault("Content-Disposition", f'attachment; filename="{filename}"')
        if no_store:
            cache_control = "no-store"
        elif max_age:
            cache_control = f"public, max-age={max_age}"
            headers.setdefault("expires", formatdate(time.time() + max_age, usegmt=True))
        else:
            cache_control = "no-cache"
        headers.setdefault("cache-control", cache_control)
        filename = filename or os.path.split(location)[-1]

        if opened is None:
            opened = await open_file(location)
        offset, count = span(_range, opened.stat.st_size)
        if _range:
            headers["Content-Range"] = f"bytes {_range.start}-{_range.end}/{_range.total}"
            status = 206
        content_type = mime_type or guess_content_type(
            filename, fallback="text/plain; charset=utf-8"
        )
        return ZeroCopyFile(opened, offset, count, status, headers, content_type)
    except BaseException:
        if opened is not None:
            opened.close()
        raise


class ZeroCopyFileStream(ResponseStream):
    """What :func:`file_stream` returns: Sanic's ``ResponseStream``, whose streaming function
    sends the file with ``zcio.send_file`` in one chunk (chunked encoding, as Sanic's; or
    Content-Length framing when the headers give one)."""

    __slots__ = ()


async def file_stream(
    location: str | PurePath,
    status: int = 200,
    chunk_size: int = 4096,
    mime_type: str | None = None,
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    _range: Range | None = None,
) -> ResponseStream:
    """Sanic's ``sanic.response.file_stream``, same arguments, status and headers. The file is
    opened when the response is streamed, as Sanic's; on plaintext HTTP/1.1 its bytes go by
    ``zcio.send_file`` as one chunk, elsewhere ``chunk_size`` bytes per read through Sanic's
    send. A range is sent exactly (never past its end, unlike Sanic issue 2507)."""
    return stream_response(
        location,
        None,
        status=status,
        chunk_size=chunk_size,
        mime_type=mime_type,
        headers=headers,
        filename=filename,
        _range=_range,
    )


def stream_response(
    location: str | PurePath,
    opened: zcio.asgi.Opened | None,
    *,
    status: int = 200,
    chunk_size: int = 4096,
    mime_type: str | None = None,
    headers: dict[str, str] | None = None,
    filename: str | None = None,
    _range: Range | None = None,
) -> ResponseStream:
    """:func:`file_stream` for a file already open (``opened``, which it then owns), or by
    path."""
    headers = headers or {}
    if filename:
        headers.setdefault("Content-Disposition", f'attachment; filename="{filename}"')
    filename = filename or os.path.split(location)[-1]
    mime_type = mime_type or guess_type(filename)[0] or "text/plain"
    if _range:
        headers["Content-Range"] = f"bytes {_range.start}-{_range.end}/{_range.total}"
        status = 206
    holder = [opened]

    async def streaming_fn(response: Any) -> None:
        file = holder.pop() or await open_file(location)
        with file:
            offset, count = span(_range, file.stat.st_size)
            inner = response.response
            stream = zero_copy_stream(inner.stream)
            if stream is None or not count:
                async for data in read_chunks(file, offset, count, chunk_size):
                    await response.write(data)
                return
            await inner.send(b"", False)  # the headers: chunked, or the given Content-Length
            if stream.response_func == stream.http1_response_chunked:
                await stream._send(b"%x\r\n" % count)
                await send_range(stream, file, offset, count)
                await stream._send(b"\r\n")
            elif stream.response_func == stream.http1_response_normal:
                if count > stream.response_bytes_left:
                    raise ServerError("Response was bigger than content-length")
                await send_range(stream, file, offset, count)
                stream.response_bytes_left -= count
            else:  # no body goes out (a status without one): Sanic's own calls
                async for data in read_chunks(file, offset, count, chunk_size):
                    await response.write(data)

    # A stream that is never streamed leaves ``opened`` to the garbage collector (FileIO
    # closes itself), as Sanic leaves its own unsent responses.
    return ZeroCopyFileStream(
        streaming_fn=streaming_fn, status=status, headers=headers, content_type=mime_type
    )
