"""Sources for ``splice_stream``, ``tee_stream`` and ``copy``: what to read, and how.

A tap answers, whatever the source is:

* which fd the kernel should read from (``fd``; a private dup for asyncio transports);
* how to wait until it is readable;
* which bytes the wrapper already read ahead into user space (``take_buffered``): they are
  delivered first, and read-ahead is stopped while the transfer runs (``__aenter__``), so
  nothing is reordered, lost or read twice, and the stream is usable afterwards;
* how to read user-space bytes when TLS runs in Python (``read_stream``).

Loop-specific taps (asyncio ``StreamReader``, anyio streams on asyncio) live in ``_backends``.
"""

from __future__ import annotations

import os
import ssl
from contextlib import ExitStack
from typing import Any

import anyio

from ._endpoint import Endpoint
from ._errors import ClosedSource
from ._objects import Owner, Target, unwrap
from ._probe import FdInfo
from ._sinks import describe, require_nonblocking

__all__ = ["Tap", "open_tap"]


class Tap(Endpoint):
    """A source with a plain fd: sockets, pipes, devices, raw fds; no user-space buffer.

    Entering claims it and stops the wrapper's read-ahead (``_take``).
    """

    action = "reading from"

    def __init__(self, target: Target, info: FdInfo) -> None:
        super().__init__(target, info)
        self.at_eof = False  # the wrapper already saw the end (after its buffered bytes)

    def take_buffered(self, limit: int) -> bytes:
        """Up to ``limit`` bytes the wrapper read ahead, removed from it."""
        return b""

    async def wait_readable(self) -> None:
        await anyio.wait_readable(self.fd)

    def read_fd(self, buf: memoryview) -> int:
        """One non-blocking read; ``BlockingIOError`` when there is nothing yet; 0 at EOF."""
        return os.readv(self.fd, [buf])

    async def read_stream(self, limit: int) -> bytes:
        """Up to ``limit`` bytes through the wrapper (TLS taps only); b"" at the end."""
        raise NotImplementedError(f"{self!r} reads through its fd")


class SslSocketTap(Tap):
    """A non-blocking ``ssl.SSLSocket``: decrypted in Python, read with its ``recv``."""

    async def read_stream(self, limit: int) -> bytes:
        sock: ssl.SSLSocket = self.target.obj  # type: ignore[assignment]
        while True:
            try:
                return sock.recv(limit)
            except ssl.SSLWantReadError:
                await anyio.wait_readable(self.fd)
            except ssl.SSLWantWriteError:
                await anyio.wait_writable(self.fd)
            except ssl.SSLZeroReturnError:
                return b""


class GuardedTap(Tap):
    """anyio and trio streams without read-ahead: hold their receive guard; TLS through them."""

    def _take(self, stack: ExitStack) -> None:
        obj = self.target.obj
        for name in ("_receive_guard", "_receive_conflict_detector"):
            guard = getattr(obj, name, None)
            if guard is not None and hasattr(guard, "__enter__"):
                stack.enter_context(guard)

    async def read_stream(self, limit: int) -> bytes:
        stream: Any = self.target.obj
        if self.target.owner is Owner.TRIO:
            return bytes(await stream.receive_some(limit))
        try:
            return bytes(await stream.receive(limit))
        except anyio.EndOfStream:
            return b""


def open_tap(obj: object) -> Tap:
    """The tap for ``obj``. Raises ``TypeError``/``ValueError`` for wrong objects,
    ``ValueError`` for closed ones, before anything moves. Regular files are not taps: the
    transfer functions read them by offset (see ``_source``)."""
    target = unwrap(obj)
    if target.owner is Owner.PATH:
        raise TypeError("a path is not a stream: open it, or use zcio.copy")
    if target.owner in (Owner.WRITER, Owner.TRANSPORT):
        raise TypeError(
            "an asyncio StreamWriter or transport cannot be read from: pass the StreamReader"
        )
    if target.closed:
        raise ClosedSource(f"{target.description} is closed", 0)
    if target.owner is Owner.READER or (target.owner is Owner.ANYIO and target.transport):
        from ._backends._asyncio import transport_tap

        return transport_tap(target)
    info = describe(target)
    if target.owner in (Owner.ANYIO, Owner.TRIO):
        return GuardedTap(target, info)
    tap = (SslSocketTap if target.owner is Owner.SSL_SOCKET else Tap)(target, info)
    require_nonblocking(info, target)
    return tap
