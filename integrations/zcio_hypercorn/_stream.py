"""hypercorn's HTTP stream, taught the two ASGI file messages.

``http.response.zerocopysend`` (a file object or fd, an optional offset and count, more_body)
and ``http.response.pathsend`` (an absolute path, the whole rest of the body) become
:class:`~zcio_hypercorn._events.FileBody` events, which the h11 protocol frames and the TCP
server sends with :func:`zcio.send_file`. Every other message is hypercorn's own
``HTTPStream.app_send``, unchanged.

A stream is switched to :class:`ZeroCopyHTTPStream` in place, by :class:`Advertising` (the
protocol's task group, wrapped), right before its app is spawned: hypercorn builds the scope
and spawns the app in one call, and this is the one moment in between where the extensions can
be added to the scope.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.utils import UnexpectedMessageError, suppress_body

import zcio.asgi
from zcio.asgi import PATHSEND, ZEROCOPYSEND

from ._events import File, FileBody

__all__ = ["HTTP1_VERSIONS", "Advertising", "ZeroCopyHTTPStream"]

#: The HTTP versions h11 serves: the only ones the extensions are offered on.
HTTP1_VERSIONS = frozenset({"1.0", "1.1"})


class ZeroCopyHTTPStream(HTTPStream):
    """hypercorn's ``HTTPStream`` that also takes ``http.response.zerocopysend`` and
    ``http.response.pathsend``.

    The rules are hypercorn's for a body message: before ``http.response.start`` or after the
    response's end, :class:`hypercorn.utils.UnexpectedMessageError`; a HEAD request or a
    bodiless status (1xx, 204, 304) sends no body, and the file is not even opened. Once the
    client has gone (the stream is closed), file messages are ignored.

    Errors: a negative offset or count is a ``ValueError`` before anything is sent. Those of
    :func:`zcio.send_file` on the server's side are handled by the TCP
    server (a vanished client closes the stream; a file that ends before the promised count
    aborts the connection and raises ``RuntimeError`` here). For ``pathsend``, the open's
    ``OSError`` (and :class:`zcio.asgi.NotARegularFileError`) is raised before any body byte.
    Cancellation: the connection is aborted if a file was being sent (its framing is broken).
    """

    def app_send(self, message: Any) -> Coroutine[Any, Any, None]:
        # A plain function returning a coroutine: ordinary messages cost one call more.
        if message is not None:
            kind = message["type"]
            if kind == ZEROCOPYSEND:
                return self._zerocopysend(message)
            if kind == PATHSEND:
                return self._pathsend(message)
        return HTTPStream.app_send(self, message)

    def _may_send(self, kind: str) -> bool:
        """hypercorn's rules for a body message; False when the client is gone."""
        if self.state != ASGIHTTPState.RESPONSE:
            raise UnexpectedMessageError(self.state, kind)
        return not self.closed

    def _suppressed(self) -> bool:
        return suppress_body(self.scope["method"], int(self.response["status"]))

    async def _zerocopysend(self, message: Any) -> None:
        if self._may_send(ZEROCOPYSEND):
            if not self._suppressed():
                file: File = message["file"]
                offset = message.get("offset")
                if offset is None:  # the spec: from the file's position, which moves on
                    offset = (
                        os.lseek(file, 0, os.SEEK_CUR) if isinstance(file, int) else file.tell()
                    )
                elif not isinstance(file, int):
                    # An explicit offset, as sendfile(2) takes it: the file's position is not
                    # used, and zcio.send_file given the fd leaves it alone.
                    file = file.fileno()
                count = message.get("count")
                if count is None:
                    fd = file if isinstance(file, int) else file.fileno()
                    count = max(os.fstat(fd).st_size - offset, 0)
                if offset < 0 or count < 0:  # before h11 counts a byte: the response can go on
                    raise ValueError(f"offset and count must be >= 0, not {offset}, {count}")
                if count > 0:
                    await self.send(FileBody(self.stream_id, file, offset, count))
            await self._body_done(message.get("more_body", False))

    async def _pathsend(self, message: Any) -> None:
        if self._may_send(PATHSEND):
            if not self._suppressed():
                # On the event loop when the kernel has the path cached, else in a thread.
                opened = await zcio.asgi.open_file(message["path"], abandon_on_cancel=True)
                with opened:
                    size = opened.stat.st_size
                    if size > 0:
                        # The fd: the server owns this file, its position does not matter.
                        await self.send(FileBody(self.stream_id, opened.file.fileno(), 0, size))
            await self._body_done(False)

    async def _body_done(self, more_body: bool) -> None:
        # What hypercorn's app_send does after a body message.
        if not more_body and not self.closed:
            if self.response.get("trailers", False):
                self.state = ASGIHTTPState.TRAILERS
            else:
                await self._send_closed()


class Advertising:
    """A connection's task group (hypercorn's, wrapped) that adds the file extensions to each
    HTTP/1.x request's scope and switches its stream to :class:`ZeroCopyHTTPStream`, just
    before the app is spawned. One per plaintext connection the server can send files on;
    everything else is the wrapped group's."""

    __slots__ = ("_group",)

    def __init__(self, group: Any) -> None:
        self._group = group

    async def spawn_app(
        self, app: Any, config: Any, scope: Any, send: Callable[[Any], Awaitable[None]]
    ) -> Callable[[Any], Awaitable[None]]:
        stream = getattr(send, "__self__", None)
        if (
            type(stream) is HTTPStream
            and scope.get("type") == "http"
            and scope.get("http_version") in HTTP1_VERSIONS
        ):
            extensions = scope.setdefault("extensions", {})
            extensions[ZEROCOPYSEND] = {}
            extensions[PATHSEND] = {}
            stream.__class__ = ZeroCopyHTTPStream
            send = stream.app_send
        return await self._group.spawn_app(app, config, scope, send)  # type: ignore[no-any-return]

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        self._group.spawn(func, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._group, name)
