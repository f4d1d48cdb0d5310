"""Destinations: one object per transfer that knows how to write to what the caller passed.

A sink answers four questions for the transfer loop, whatever the destination is:

* which fd the kernel should write to (``fd``; a private dup for asyncio transports, whose
  loops refuse a second watcher on the transport's own fd);
* how to wait until that fd is writable (on the running backend, through anyio);
* how to get bytes that the destination already buffers in user space onto the wire first, and
  how to keep other writers out while zero-copy bytes flow (``__aenter__``);
* how to write user-space bytes when TLS runs in Python (``write_stream``).

Sinks for loop-specific objects live in ``_backends``; this module holds the common ones and
the registry that refuses two zcio transfers into the same socket or file at once.
"""

from __future__ import annotations

import os
import ssl
import threading
from contextlib import ExitStack
from types import TracebackType
from typing import Self

import anyio
from anyio.lowlevel import checkpoint

from ._errors import BusyError, ClosedDestination
from ._kinds import Kind
from ._objects import Owner, Target, unwrap
from ._probe import FdInfo, describe_fd

__all__ = ["Sink", "open_sink"]

_busy_lock = threading.Lock()
_busy: set[tuple[str, int, int]] = set()


class Sink:
    """A destination with a plain fd: sockets, pipes, devices, files, raw descriptors.

    Use as ``async with sink:``; entering claims the destination (``BusyError`` if another zcio
    transfer holds it) and flushes what it buffers; leaving releases everything it took.
    """

    def __init__(self, target: Target, info: FdInfo) -> None:
        self.target = target
        self.info = info
        self.fd = target.fd
        self._exit = ExitStack()

    @property
    def tls(self) -> bool:
        return self.info.kind is Kind.TLS

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info}>"

    async def __aenter__(self) -> Self:
        with ExitStack() as stack:
            stack.enter_context(_claim(self.info, self.target))
            self._fence(stack)
            await self._flush()
            self._exit = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit.close()

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


def _claim(info: FdInfo, target: Target, action: str = "sending to") -> _Claim:
    return _Claim((action, *info.identity), target.description, action)


class _Claim:
    """One zcio transfer per (action, socket or file): keyed by ``st_dev, st_ino``, so the same
    socket reached through another fd or wrapper is the same destination."""

    def __init__(self, key: tuple[str, int, int], what: str, action: str) -> None:
        self.key = key
        self.what = what
        self.action = action

    def __enter__(self) -> None:
        if self.key[1:] == (0, 0):
            return  # no fd: the wrapper's own guard is all there is
        with _busy_lock:
            if self.key in _busy:
                raise BusyError(self.what, self.action)
            _busy.add(self.key)

    def __exit__(self, *exc: object) -> None:
        if self.key[1:] != (0, 0):
            with _busy_lock:
                _busy.discard(self.key)


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
