"""Destinations: one object per transfer that knows how to write to what the caller passed.

A sink answers four questions for the transfer loop, whatever the destination is:

* which fd the kernel should write to (``fd``; a private dup for asyncio transports, whose
  loops refuse a second watcher on the transport's own fd);
* how to wait until that fd is writable (on the running backend, through anyio);
* how to get bytes that the destination already buffers in user space onto the wire first, and
  how to keep other writers out while zero-copy bytes flow (``__aenter__``, see ``_endpoint``);
* how to write user-space bytes when TLS runs in Python (``write_stream``).

Sinks for loop-specific objects live in ``_backends``; this module holds the common ones.
"""

from __future__ import annotations

import os
import ssl
from contextlib import ExitStack

import anyio
from anyio.lowlevel import checkpoint

from ._endpoint import Endpoint
from ._errors import ClosedDestination
from ._kinds import Kind
from ._objects import Owner, Target, unwrap
from ._probe import FdInfo, describe_fd

__all__ = ["Sink", "open_sink"]


class Sink(Endpoint):
    """A destination with a plain fd: sockets, pipes, devices, files, raw descriptors.

    Entering claims it, keeps other writers out (``_fence``) and flushes what it buffers.
    """

    action = "sending to"

    def _take(self, stack: ExitStack) -> None:
        self._fence(stack)

    async def _prepare(self) -> None:
        await self._flush()

    def _fence(self, stack: ExitStack) -> None:
        """Keep other writers of the same wrapper out while we run (nothing to do for an fd)."""

    async def _flush(self) -> None:
        """Push bytes buffered in user space to the fd. Python file objects may buffer."""
        flush = getattr(self.target.obj, "flush", None)
        if self.target.owner is Owner.FILE and callable(flush):
            flush()

    async def wait_writable(self) -> None:
        await anyio.wait_writable(self.fd)

    def write_fd(self, data: memoryview) -> int:
        """One non-blocking write to the fd; ``BlockingIOError`` when it is full."""
        return os.write(self.fd, data)

    async def write_stream(self, data: bytes) -> None:
        """Write all of ``data`` through the wrapper (only TLS sinks need this)."""
        raise NotImplementedError(f"{self!r} writes through its fd")


class SslSocketSink(Sink):
    """A non-blocking ``ssl.SSLSocket``: TLS records built in Python, written with its ``send``."""

    async def write_stream(self, data: bytes) -> None:
        sock: ssl.SSLSocket = self.target.obj  # type: ignore[assignment]
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view) :]
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(self.fd)
            except ssl.SSLWantReadError:
                await anyio.wait_readable(self.fd)
        await checkpoint()


class AnyioSink(Sink):
    """An anyio stream on the trio backend, or any anyio TLS stream.

    Holds the stream's own send guard, so ``stream.send()`` from another task is refused with
    ``anyio.BusyResourceError`` while zcio writes, exactly as two concurrent sends would be.
    """

    def _fence(self, stack: ExitStack) -> None:
        guard = getattr(self.target.obj, "_send_guard", None)
        if guard is not None and hasattr(guard, "__enter__"):
            stack.enter_context(guard)

    async def write_stream(self, data: bytes) -> None:
        await self.target.obj.send(data)  # type: ignore[attr-defined]


def open_sink(obj: object) -> Sink:
    """The sink for ``obj``. Raises ``TypeError``/``ValueError`` for wrong objects and
    :class:`~zcio.ClosedDestination` for closed ones, before anything moves."""
    target = unwrap(obj)
    if target.owner is Owner.PATH:
        raise TypeError("the destination must be an open file, socket or stream, not a path")
    if target.owner is Owner.READER:
        raise TypeError("a StreamReader cannot be written to: pass its StreamWriter")
    if target.closed:
        raise ClosedDestination(f"{target.description} is closed", 0)
    if target.transport is not None or target.owner in (Owner.TRANSPORT, Owner.WRITER):
        from ._backends._asyncio import TransportSink

        return TransportSink.create(target)
    if target.owner is Owner.TRIO:
        from ._backends._trio import TrioSink

        return TrioSink(target, describe(target))
    if target.owner is Owner.ANYIO:
        return AnyioSink(target, describe(target))
    cls = SslSocketSink if target.owner is Owner.SSL_SOCKET else Sink
    sink = cls(target, describe(target))
    require_nonblocking(sink.info, target)
    return sink


def describe(target: Target) -> FdInfo:
    from ._probe import probe

    if target.fd < 0:
        return probe(target.obj)
    try:
        return describe_fd(target.fd, tls=target.tls, owner=target.description)
    except OSError as exc:
        raise ClosedDestination(f"{target.description} is not open: {exc}", 0) from exc


def require_nonblocking(info: FdInfo, target: Target) -> None:
    # A blocking socket or pipe would stall the event loop inside write(2); asyncio's
    # sock_sendfile refuses them the same way. Regular files and devices never report EAGAIN.
    if info.kind in (Kind.TCP, Kind.UNIX_STREAM, Kind.DATAGRAM, Kind.PIPE, Kind.TLS) and not (
        info.nonblocking
    ):
        raise ValueError(
            f"{target.description} must be non-blocking "
            "(sock.setblocking(False) or os.set_blocking(fd, False))"
        )
