"""The adapter for asyncio transports, ``StreamWriter`` and ``StreamReader`` (default loop and
uvloop). Loaded by the registry only when asyncio is imported.

Transports are recognised by their methods as well as by class, so uvloop's are too. The
private state read here, each read guarded: ``StreamReader._transport`` (the reader keeps no
public reference to it), ``StreamReader._buffer`` (its read-ahead, handed over first) and
``StreamReader._paused`` (set when the reader paused the transport itself).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._kinds import Method
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno
from ._small import SmallDestination, remembered
from ._transport import TransportSink, TransportTap, describe_transport

__all__ = [
    "BROKEN_ERRORS",
    "CLOSED_ERRORS",
    "StreamReaderTap",
    "StreamWriterSink",
    "open_sink",
    "open_tap",
    "small_send_destination",
    "unwrap",
]

CLOSED_ERRORS: tuple[type[BaseException], ...] = ()
BROKEN_ERRORS: tuple[type[BaseException], ...] = ()

_TRANSPORT_METHODS = ("get_extra_info", "write", "is_closing", "get_write_buffer_size")


def _is_transport(obj: object) -> bool:
    return isinstance(obj, asyncio.WriteTransport) or all(
        callable(getattr(obj, name, None)) for name in _TRANSPORT_METHODS
    )


def unwrap(obj: object) -> Target | None:
    """A transport, ``StreamWriter`` or ``StreamReader``; None for anything else. Raises
    ``ValueError`` for a ``StreamReader`` that has no transport."""
    transport: Any
    if isinstance(obj, asyncio.StreamWriter):
        owner, transport = Owner.WRITER, obj.transport
    elif isinstance(obj, asyncio.StreamReader):
        transport = getattr(obj, "_transport", None)
        if transport is None:
            raise ValueError("this StreamReader is not attached to a transport")
        owner = Owner.READER
    elif _is_transport(obj):
        owner, transport = Owner.TRANSPORT, obj
    else:
        return None
    tls = transport.get_extra_info("sslcontext") is not None or (
        transport.get_extra_info("ssl_object") is not None
    )
    sock = transport.get_extra_info("socket") or transport.get_extra_info("pipe")
    fd = -1 if sock is None else fileno(sock)
    closed = fd < 0 or transport.is_closing()
    return Target(obj, owner, fd=fd, tls=tls, closed=closed, transport=transport)


class StreamWriterSink(TransportSink):
    """An asyncio ``StreamWriter``: TLS bytes go through ``write`` and ``drain``."""

    async def write_stream(self, data: bytes) -> None:
        writer: Any = self.target.obj
        writer.write(data)
        await writer.drain()


class StreamReaderTap(TransportTap):
    """An asyncio ``StreamReader``: its ``_buffer`` holds what the transport read ahead."""

    def take_buffered(self, limit: int) -> bytes:
        reader: Any = self.target.obj
        if reader.exception() is not None:
            raise reader.exception()
        buf: bytearray | None = getattr(reader, "_buffer", None)
        if buf is None:
            return b""
        data = bytes(buf[:limit])
        del buf[:limit]
        self.at_eof = reader.at_eof()
        return data

    def _resume(self) -> None:
        # The reader may have paused the transport itself (buffer over its limit); it resumes
        # only when its buffer drains, which we just did for it.
        reader: Any = self.target.obj
        if getattr(reader, "_paused", False):
            reader._paused = False
        super()._resume()

    async def read_stream(self, limit: int) -> bytes:
        reader: asyncio.StreamReader = self.target.obj  # type: ignore[assignment]
        return await reader.read(limit)


def open_sink(target: Target) -> Sink:
    if target.owner is Owner.WRITER:
        return StreamWriterSink.create(target)
    return TransportSink.create(target)


def open_tap(target: Target) -> Tap:
    return StreamReaderTap.create(target)


# -- the small-send path ----------------------------------------------------------------------


def small_send_destination(obj: object) -> SmallDestination | None:
    """The socket fd and description of ``obj``, an asyncio transport or ``StreamWriter``, if
    zcio may write to that socket right now, synchronously, keeping the order of bytes: a
    plaintext stream socket, its transport open, nothing in its write buffer. ``None``
    otherwise, and for every other kind of object (they take the general path).

    What does not change while a transport lives (kind, TLS, the fd) is worked out once per
    object (``_small.remembered``); the transport's state is checked on every call.
    """
    if not isinstance(obj, asyncio.StreamWriter) and not _is_transport(obj):
        return None
    entry = remembered(obj, _small_send_entry)
    if entry is None:
        return None
    transport: Any = obj.transport if isinstance(obj, asyncio.StreamWriter) else obj
    if transport.is_closing() or transport.get_write_buffer_size():
        return None
    return entry


def _small_send_entry(obj: object) -> SmallDestination | None:
    target = unwrap(obj)
    if target is None or target.closed or target.tls:
        return None
    try:
        info = describe_transport(target)
    except OSError:
        return None
    if Method.SENDFILE not in info.destinations or not info.nonblocking:
        return None
    return target.fd, info
