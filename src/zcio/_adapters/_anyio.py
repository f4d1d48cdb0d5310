"""The adapter for anyio streams (``SocketStream``, ``TLSStream``, on either backend).

Always loaded: zcio runs on anyio. Recognised by anyio's typed attributes (the raw socket,
the TLS object). On the asyncio backend a socket stream writes through an asyncio transport,
so its sink and tap are the transport ones (``_transport``) plus anyio's own guard; on the
trio backend, and for TLS over anything, the stream's guard is held and TLS bytes go through
its ``send``/``receive``.

The private state read here, each read guarded: ``_transport`` (the asyncio backend's
transport), ``_closed`` (set by ``aclose()`` before it shuts the socket down, so an ``EPIPE``
then is our side's doing), ``_send_guard``/``_receive_guard`` (so a concurrent
``send()``/``receive()`` is refused as two concurrent sends would be; the small-send path reads
the send guard's ``_guarded`` flag, set while another task is inside ``send()``),
``_trio_socket`` (the trio backend's socket, whose fd the small-send path checks), and
``_protocol``
with its ``read_queue``, ``read_event`` and ``is_at_eof`` (the asyncio backend's read-ahead,
handed over first).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.tls import TLSAttribute

from .._endpoint import describe
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno
from ._small import SmallDestination, remembered, stream_socket
from ._transport import TransportSink, TransportTap

__all__ = [
    "BROKEN_ERRORS",
    "CLOSED_ERRORS",
    "AnyioSink",
    "AnyioTap",
    "open_sink",
    "open_tap",
    "small_send_destination",
    "unwrap",
]

CLOSED_ERRORS: tuple[type[BaseException], ...] = (anyio.ClosedResourceError,)
BROKEN_ERRORS: tuple[type[BaseException], ...] = (anyio.BrokenResourceError,)


def unwrap(obj: object) -> Target | None:
    if not isinstance(obj, anyio.TypedAttributeProvider):
        return None
    tls = obj.extra(TLSAttribute.ssl_object, None) is not None
    raw = obj.extra(SocketAttribute.raw_socket, None)
    if raw is None:
        return Target(obj, Owner.ANYIO, tls=tls)  # e.g. TLS over a memory stream
    fd = fileno(raw)
    # anyio's asyncio SocketStream writes through a transport; its trio one through the socket.
    transport = getattr(obj, "_transport", None)
    return Target(obj, Owner.ANYIO, fd=fd, tls=tls, closed=fd < 0, transport=transport)


def _hold(obj: object, name: str, stack: ExitStack) -> None:
    """Enter ``obj``'s guard ``name`` until ``stack`` closes, if it has one."""
    guard = getattr(obj, name, None)
    if guard is not None and hasattr(guard, "__enter__"):
        stack.enter_context(guard)


class AnyioSink(Sink):
    """An anyio stream on the trio backend, or any anyio TLS stream.

    Holds the stream's own send guard, so ``stream.send()`` from another task is refused with
    ``anyio.BusyResourceError`` while zcio writes, exactly as two concurrent sends would be.
    """

    def _fence(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_send_guard", stack)

    async def write_stream(self, data: bytes) -> None:
        stream: Any = self.target.obj
        await stream.send(data)


class AnyioTransportSink(TransportSink):
    """anyio's ``SocketStream`` on asyncio: a transport's socket, behind anyio's send guard."""

    def _fence(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_send_guard", stack)
        super()._fence(stack)

    def _closing(self) -> bool:
        """Whether ``aclose()`` was called on the anyio stream we write through.

        anyio before 4.16 closes a ``SocketStream`` with ``shutdown(SHUT_WR)`` first, so a
        send running in another task meets ``EPIPE``, which alone reads as the peer's doing.
        anyio sets its private ``_closed`` flag first; the stream's own ``send`` would then
        raise ``ClosedResourceError``, and so does zcio. (anyio 4.16 aborts the transport, which
        our waits notice as a closed transport.)
        """
        return getattr(self.target.obj, "_closed", False) is True

    async def write_stream(self, data: bytes) -> None:
        stream: Any = self.target.obj
        await stream.send(data)


class AnyioTap(Tap):
    """An anyio stream without read-ahead: holds its receive guard; TLS through ``receive``."""

    def _take(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_receive_guard", stack)

    async def read_stream(self, limit: int) -> bytes:
        stream: Any = self.target.obj
        try:
            return bytes(await stream.receive(limit))
        except anyio.EndOfStream:
            return b""


class AnyioTransportTap(TransportTap):
    """anyio's ``SocketStream`` on asyncio: its protocol keeps a queue of received chunks."""

    def _take(self, stack: ExitStack) -> None:
        _hold(self.target.obj, "_receive_guard", stack)
        super()._take(stack)

    def take_buffered(self, limit: int) -> bytes:
        protocol: Any = getattr(self.target.obj, "_protocol", None)
        queue = getattr(protocol, "read_queue", None)
        if queue is None:
            return b""
        out = bytearray()
        while queue and len(out) < limit:
            chunk = queue.popleft()
            take = limit - len(out)
            if len(chunk) > take:
                queue.appendleft(chunk[take:])
                chunk = chunk[:take]
            out += chunk
        if not queue:
            protocol.read_event.clear()
            self.at_eof = bool(getattr(protocol, "is_at_eof", False))
        return bytes(out)


def open_sink(target: Target) -> Sink:
    if target.transport is not None:
        return AnyioTransportSink.create(target)
    return AnyioSink(target, describe(target))


def open_tap(target: Target) -> Tap:
    if target.transport is not None:
        return AnyioTransportTap.create(target)
    return AnyioTap(target, describe(target))


def small_send_destination(obj: object) -> SmallDestination | None:
    """The fd and description of ``obj`` if it is an anyio ``SocketStream`` (either backend;
    never TLS) over an open plaintext TCP or Unix stream socket that nothing is sending to:
    its send guard is provably free (no task is inside ``send()``), ``aclose()`` was not
    called, and on asyncio its transport is open with nothing buffered. None otherwise, and
    for every other object. The socket's description is remembered while the stream lives."""
    if not isinstance(obj, SocketStream):
        return None
    guard = getattr(obj, "_send_guard", None)
    if getattr(guard, "_guarded", None) is not False or getattr(obj, "_closed", False) is True:
        return None  # busy, closed, or an anyio that keeps them otherwise: decline
    entry = remembered(obj, _small_send_entry)
    if entry is None:
        return None
    transport: Any = getattr(obj, "_transport", None)
    if transport is not None:
        if transport.is_closing() or transport.get_write_buffer_size():
            return None
    elif fileno(getattr(obj, "_trio_socket", None)) != entry[0]:
        return None
    return entry


def _small_send_entry(obj: object) -> SmallDestination | None:
    target = unwrap(obj)
    if target is None or target.tls or target.closed:
        return None
    entry = stream_socket(target.fd, target.description)
    return entry if entry is not None and entry[1].nonblocking else None
