"""The adapter for ``ssl.SSLSocket``: TLS in user space, over a non-blocking socket.

Every byte is encrypted or decrypted in Python, so only the user-space copy applies; the
sink and tap write and read through the socket's own ``send`` and ``recv``, waiting for
whichever direction the TLS engine asks for.
"""

from __future__ import annotations

import ssl

import anyio
from anyio.lowlevel import checkpoint

from .._endpoint import describe, require_nonblocking
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target, fileno

__all__ = [
    "BROKEN_ERRORS",
    "CLOSED_ERRORS",
    "SslSocketSink",
    "SslSocketTap",
    "open_sink",
    "open_tap",
    "unwrap",
]

CLOSED_ERRORS: tuple[type[BaseException], ...] = ()
BROKEN_ERRORS: tuple[type[BaseException], ...] = ()


def unwrap(obj: object) -> Target | None:
    if not isinstance(obj, ssl.SSLSocket):
        return None
    fd = fileno(obj)
    return Target(obj, Owner.SSL_SOCKET, fd=fd, tls=True, closed=fd < 0)


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


def open_sink(target: Target) -> Sink:
    sink = SslSocketSink(target, describe(target))
    require_nonblocking(sink.info, target)
    return sink


def open_tap(target: Target) -> Tap:
    info = describe(target)
    tap = SslSocketTap(target, info)
    require_nonblocking(info, target)
    return tap
