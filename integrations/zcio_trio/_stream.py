"""trio streams that keep trio's stream contract and add zero-copy sends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

import zcio

__all__ = [
    "BrokenDestination",
    "BrokenSource",
    "ClosedDestination",
    "ClosedSource",
    "ZeroCopySocketStream",
    "ZeroCopyStream",
    "open_tcp_stream",
    "serve_tcp",
    "wrap",
]


class ZeroCopyStream(trio.abc.Stream):
    """Any trio stream (a ``trio.SSLStream``, say), plus :meth:`send_file` and
    :meth:`splice_from`. Where the stream underneath cannot do zero-copy (TLS runs in Python),
    those methods copy through user space, correctly and counted in ``zcio.stats()``.

    Everything else is the wrapped stream's own behaviour: ``send_all`` conflicts raise
    ``trio.BusyResourceError``, a closed stream ``trio.ClosedResourceError``, and so on.
    """

    #: The stream underneath; pass it to ``zcio`` functions directly if you like.
    transport_stream: trio.abc.Stream

    def __init__(self, transport_stream: trio.abc.Stream) -> None:
        if isinstance(transport_stream, ZeroCopyStream):
            transport_stream = transport_stream.transport_stream
        self.transport_stream = transport_stream

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.transport_stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.transport_stream.aclose()

    async def send_file(
        self,
        file: object,
        *,
        offset: int = 0,
        count: int | None = None,
        progress: zcio.Progress | None = None,
    ) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` (``sendfile(2)`` on a socket);
        return how many were sent.

        ``file`` is a path, a binary file object or the fd of a regular file; the semantics are
        :func:`zcio.send_file`'s: bytes are sent in order after any earlier ``send_all``, a
        concurrent ``send_all`` raises ``trio.BusyResourceError``, pages not in the page cache
        are read by a worker thread so the run loop never waits on the disk.

        Cancellation follows trio's ``send_all`` contract: a cancelled call may have sent
        some, all or none of the bytes, and the stream stays usable (for a plain socket). Pass
        a :class:`zcio.Progress` to know exactly how many: ``progress.sent``. Errors:
        ``zcio.IncompleteTransfer`` when ``count`` was given and the file ended first,
        :class:`BrokenDestination` when the peer went away and :class:`ClosedDestination` when
        this stream was closed: subclasses of both ``zcio``'s errors and trio's
        ``BrokenResourceError``/``ClosedResourceError``, each with ``.sent``.
        """
        return await _converted(
            zcio.send_file(
                self.transport_stream, file, offset=offset, count=count, progress=progress
            )
        )

    async def splice_from(
        self,
        source: object,
        *,
        count: int | None = None,
        progress: zcio.Progress | None = None,
    ) -> int:
        """Pump ``source`` into this stream until it ends (or ``count`` bytes); return how many.

        ``source`` is another stream (this class, a ``trio.SocketStream``), a socket or a pipe;
        between sockets the bytes go through a kernel pipe with ``splice(2)``. The end of
        ``source`` is not passed on: call :meth:`ZeroCopySocketStream.send_eof` for that.

        Cancellation: ``progress.taken`` bytes left ``source``, ``progress.sent`` reached this
        stream; bytes between the two (in zcio's pipe) were delivered if the peer took them
        within a second, else they are ``progress.stranded``. Errors as for
        :func:`zcio.splice_stream`.
        """
        if isinstance(source, ZeroCopyStream):
            source = source.transport_stream
        return await _converted(
            zcio.splice_stream(source, self.transport_stream, count=count, progress=progress)
        )


class ZeroCopySocketStream(ZeroCopyStream, trio.abc.HalfCloseableStream):
    """A ``trio.SocketStream`` with :meth:`send_file` and :meth:`splice_from` that move bytes
    with ``sendfile(2)`` and ``splice(2)``. A ``trio.abc.HalfCloseableStream``: it passes trio's
    own ``check_half_closeable_stream``."""

    def __init__(self, transport_stream: trio.SocketStream) -> None:
        if not isinstance(transport_stream, trio.SocketStream):
            raise TypeError(
                f"expected a trio.SocketStream, got {type(transport_stream).__name__}; "
                "use ZeroCopyStream for other streams"
            )
        super().__init__(transport_stream)
        self._socket_stream = transport_stream

    @property
    def socket(self) -> trio.socket.SocketType:
        return self._socket_stream.socket

    async def send_eof(self) -> None:
        await self._socket_stream.send_eof()

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        self._socket_stream.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int) -> int:
        return self._socket_stream.getsockopt(level, option)


def wrap(stream: trio.abc.Stream) -> ZeroCopyStream:
    """:class:`ZeroCopySocketStream` for a ``trio.SocketStream``, :class:`ZeroCopyStream` for
    any other trio stream (an ``SSLStream``)."""
    if isinstance(stream, ZeroCopyStream):
        return stream
    if isinstance(stream, trio.SocketStream):
        return ZeroCopySocketStream(stream)
    return ZeroCopyStream(stream)


async def open_tcp_stream(host: str | bytes, port: int, **kwargs: Any) -> ZeroCopySocketStream:
    """``trio.open_tcp_stream``, wrapped."""
    return ZeroCopySocketStream(await trio.open_tcp_stream(host, port, **kwargs))


async def serve_tcp(
    handler: Callable[[ZeroCopySocketStream], Awaitable[object]],
    port: int,
    **kwargs: Any,
) -> None:
    """``trio.serve_tcp``, handing each connection to ``handler`` already wrapped."""

    async def wrapped(stream: trio.SocketStream) -> None:
        await handler(ZeroCopySocketStream(stream))

    await trio.serve_tcp(wrapped, port, **kwargs)


class BrokenDestination(zcio.BrokenDestination, trio.BrokenResourceError):
    """``zcio.BrokenDestination`` that trio code catches as ``trio.BrokenResourceError``."""


class ClosedDestination(zcio.ClosedDestination, trio.ClosedResourceError):
    """``zcio.ClosedDestination`` that trio code catches as ``trio.ClosedResourceError``."""


class BrokenSource(zcio.BrokenSource, trio.BrokenResourceError):
    """``zcio.BrokenSource`` that trio code catches as ``trio.BrokenResourceError``."""


class ClosedSource(zcio.ClosedSource, trio.ClosedResourceError):
    """``zcio.ClosedSource`` that trio code catches as ``trio.ClosedResourceError``."""


_AS_TRIO: list[tuple[type[zcio.TransferError], type[zcio.TransferError]]] = [
    (zcio.BrokenDestination, BrokenDestination),
    (zcio.ClosedDestination, ClosedDestination),
    (zcio.BrokenSource, BrokenSource),
    (zcio.ClosedSource, ClosedSource),
]


async def _converted(transfer: Awaitable[int]) -> int:
    """zcio's errors subclass anyio's; trio code catches trio's. Raise a class that is both,
    at this one boundary, with the same message and counts and zcio's error as the cause."""
    try:
        return await transfer
    except zcio.TransferError as exc:
        for theirs, ours in _AS_TRIO:
            if type(exc) is theirs:
                raise ours(str(exc), exc.sent, exc.taken) from exc
        raise
