"""Tornado's ``StaticFileHandler.get`` with the body sent by :func:`zcio.send_file`.

Tornado's own ``get`` does everything but the body here: the path checks (traversal, symlinks,
directories), the headers, ETags, 304, 416, ranges, ``Content-Length``, HEAD. Only the call it
makes to ``get_content(absolute_path, start, end)`` is caught (an attribute on the instance
shadows the classmethod for the length of the call), so the loop that would read and write the
body finds nothing to do; the body is then sent here, one of two ways:

* ``sendfile``: on a plaintext socket (an ``IOStream`` that is not an ``SSLIOStream``, on a real
  ``socket.socket``) of an ``HTTP1Connection``, when no output transform changes the body. The
  headers (and whatever the handler buffered) go out first with Tornado's ``flush()``; once its
  future is done the stream's write buffer is empty, and nobody else writes this response.
  zcio sends to a ``dup`` of the socket: the IOStream keeps its own fd and its watchers on the
  loop, zcio waits for writability on the dup, and if Tornado closes its fd meanwhile (the
  client went away) the number is never reused under us. The bytes sent are taken off the
  connection's ``_expected_content_remaining`` so that ``finish()`` and keep-alive work.
* Tornado's path: everything else (TLS, gzip, a connection that is not a real socket). The
  body goes through ``write()`` and ``flush()`` exactly as Tornado writes it, from Tornado's
  own ``get_content``, whose reads run in a worker thread instead of on the event loop.

A handler that overrides ``get_content`` gets Tornado's ``get`` unchanged.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio.to_thread
import tornado.web
from tornado import iostream
from tornado.http1connection import HTTP1Connection

import zcio
import zcio.asgi

__all__ = ["STOCK_GET", "StaticFileHandler", "counts", "get", "reset_counts"]

log = logging.getLogger("zcio_tornado")

STOCK_GET: Callable[..., Awaitable[None]] = tornado.web.StaticFileHandler.get
_STOCK_GET_CONTENT = tornado.web.StaticFileHandler.get_content.__func__  # type: ignore[attr-defined]
_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)

# Responses by the way their body went: "sendfile" (zcio.send_file), "thread" (Tornado's
# write/flush, file read in a worker thread), "stock" (a get_content override: Tornado's get).
_counts: Counter[str] = Counter()


def counts() -> dict[str, int]:
    """How many static-file bodies went each way in this process: ``"sendfile"`` (by
    :func:`zcio.send_file`; ``zcio.stats()`` tells which method moved the bytes), ``"thread"``
    (Tornado's own writes, the file read in a worker thread) and ``"stock"`` (a handler that
    overrides ``get_content``: Tornado's ``get`` untouched)."""
    return dict(_counts)


def reset_counts() -> None:
    """Set :func:`counts` back to zero."""
    _counts.clear()


class _Capture:
    """Stands in for ``get_content`` during Tornado's ``get``: remembers what it was asked
    for and returns no chunks. A call of another shape (one that is not the body's) goes to
    the real classmethod."""

    def __init__(self, handler: tornado.web.StaticFileHandler) -> None:
        self.handler = handler
        self.wanted: tuple[str, int | None, int | None] | None = None

    def __call__(
        self, abspath: str, start: int | None = None, end: int | None = None
    ) -> bytes | Iterator[bytes]:
        if abspath == self.handler.absolute_path and self.wanted is None:
            self.wanted = (abspath, start, end)
            return iter(())
        return type(self.handler).get_content(abspath, start, end)


async def get(self: tornado.web.StaticFileHandler, path: str, include_body: bool = True) -> None:
    """``StaticFileHandler.get``: Tornado's, with the body sent as the module says.

    Errors before the first byte (a file that vanished since it was checked) are raised as
    Tornado's ``get_content`` raises them, before the headers go, so Tornado answers 500
    (or 404 in ``validate_absolute_path``). A client that goes away ends the response as in
    Tornado (no error). A file that ends before ``Content-Length`` bytes were sent aborts the
    connection (logged): the client never takes a short body for a whole one.

    Cancellation (Tornado does not cancel handlers itself): the connection is closed, since
    how much of the body reached the client is unknown, and the cancellation propagates.
    """
    if not include_body or _overrides_get_content(type(self)):
        if include_body:
            _counts["stock"] += 1
        await STOCK_GET(self, path, include_body)
        return
    capture = _Capture(self)
    self.get_content = capture  # type: ignore[method-assign,assignment]
    try:
        await STOCK_GET(self, path, include_body)
    finally:
        self.__dict__.pop("get_content", None)
    if capture.wanted is None:
        return  # 304, 416, a redirect: no body
    abspath, start, end = capture.wanted
    length = int(self._headers.get("Content-Length", "0"))
    if length <= 0:
        return  # an empty file: Tornado writes no chunk either
    sock = _plain_socket(self)
    if sock is None:
        await _tornado_body(self, abspath, start, end)
    else:
        await _sendfile_body(self, sock, abspath, start or 0, length)


def _overrides_get_content(cls: type[tornado.web.StaticFileHandler]) -> bool:
    return getattr(cls.get_content, "__func__", None) is not _STOCK_GET_CONTENT


def _plain_socket(handler: tornado.web.StaticFileHandler) -> socket.socket | None:
    """The plaintext socket the body can be sent to with sendfile, or ``None`` when it must
    go through Tornado's writes (checked before any byte of the response is written)."""
    conn = handler.request.connection
    if not isinstance(conn, HTTP1Connection) or not _body_unchanged(handler):
        return None
    stream = conn.stream
    if not isinstance(stream, iostream.IOStream) or isinstance(stream, iostream.SSLIOStream):
        return None
    sock = stream.socket
    if stream.closed() or type(sock) is not socket.socket or isinstance(sock, ssl.SSLSocket):
        return None
    if sock.family not in _FAMILIES or sock.type != socket.SOCK_STREAM:
        return None
    return sock


def _body_unchanged(handler: tornado.web.StaticFileHandler) -> bool:
    """Whether every output transform leaves this body as it is (Tornado ships two: the
    identity, and ``GZipContentEncoding``, which compresses only some types)."""
    for transform in handler._transforms:
        kind = type(transform)
        if kind is tornado.web.OutputTransform:
            continue
        if kind is tornado.web.GZipContentEncoding and not _will_gzip(handler, transform):
            continue
        return False
    return True


def _will_gzip(handler: tornado.web.StaticFileHandler, gzip: Any) -> bool:
    """What ``GZipContentEncoding.transform_first_chunk`` will decide for a first chunk that
    is not the last one (Tornado's ``get`` flushes every chunk before ``finish()``)."""
    if not getattr(gzip, "_gzipping", True):
        return False  # the client did not ask for gzip
    compressible = getattr(gzip, "_compressible_type", None)
    if compressible is None:
        return True
    ctype = str(handler._headers.get("Content-Type", "")).split(";")[0]
    return bool(compressible(ctype)) and "Content-Encoding" not in handler._headers


async def _sendfile_body(
    handler: tornado.web.StaticFileHandler,
    sock: socket.socket,
    abspath: str,
    offset: int,
    length: int,
) -> None:
    conn = handler.request.connection
    assert isinstance(conn, HTTP1Connection)
    # Opened before the headers go, so that a file gone since it was checked is Tornado's
    # 500 (as its get_content raises), not a connection cut after a 200.
    opened = await zcio.asgi.open_file(abspath)
    try:
        try:
            await handler.flush()  # the headers and anything buffered: they go first
        except iostream.StreamClosedError:
            return
        if conn.stream.closed():
            return  # the client went away meanwhile: Tornado's get just returns
        if conn._expected_content_remaining is None:
            # No Content-Length went out (a subclass took it away): chunked framing, which
            # only Tornado's writes produce.
            await _tornado_body(handler, abspath, offset, offset + length)
            return
        _counts["sendfile"] += 1
        dup = sock.dup()  # ours to wait on, and ours until we close it: see the module
        progress = zcio.Progress()
        try:
            await zcio.send_file(dup, opened.file, offset=offset, count=length, progress=progress)
        except zcio.IncompleteTransfer as exc:
            log.warning(
                "%s ended after %d of %d bytes: connection aborted", abspath, exc.sent, length
            )
            conn.stream.close()
        except (zcio.BrokenDestination, zcio.ClosedDestination):
            conn.stream.close()  # the client went away: Tornado's get just returns
        except BaseException:
            conn.stream.close()
            raise
        finally:
            dup.close()
            if conn._expected_content_remaining is not None:
                conn._expected_content_remaining -= progress.sent
    finally:
        opened.close()


async def _tornado_body(
    handler: tornado.web.StaticFileHandler, abspath: str, start: int | None, end: int | None
) -> None:
    """Tornado's loop, byte for byte: its ``get_content`` chunks, each ``write()`` then
    ``flush()``; only the reads (and the open) run in a worker thread."""
    _counts["thread"] += 1
    content = _STOCK_GET_CONTENT(type(handler), abspath, start, end)
    chunks = iter([content]) if isinstance(content, bytes) else iter(content)
    try:
        while (chunk := await anyio.to_thread.run_sync(next, chunks, None)) is not None:
            try:
                handler.write(chunk)
                await handler.flush()
            except iostream.StreamClosedError:
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # the generator's ``with open(...)`` exits: the file is closed


class StaticFileHandler(tornado.web.StaticFileHandler):
    """``tornado.web.StaticFileHandler`` whose body goes by ``sendfile`` where it can (see
    :func:`zcio_tornado.install` for when it cannot), for ``static_handler_class=`` or an
    explicit route, without patching Tornado."""

    async def get(self, path: str, include_body: bool = True) -> None:
        await get(self, path, include_body)
