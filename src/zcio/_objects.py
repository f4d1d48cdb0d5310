"""From whatever a caller passes to the fd underneath, and who owns the bytes on the way.

``unwrap`` knows the shapes of the objects zcio accepts. It imports no event loop library:
trio objects are recognised only if trio is already imported (a trio object cannot exist
otherwise), asyncio objects by their methods, so uvloop's transports are recognised too.
"""

from __future__ import annotations

import io
import os
import socket
import ssl
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Owner", "Target", "unwrap"]


class Owner(Enum):
    """Who else may hold bytes for (or write to) the fd: decides how a transfer must behave."""

    FD = "fd"
    FILE = "file object"
    PATH = "path"
    SOCKET = "socket"
    SSL_SOCKET = "ssl.SSLSocket"
    ANYIO = "anyio stream"
    TRIO = "trio stream"
    TRANSPORT = "asyncio transport"
    WRITER = "asyncio StreamWriter"
    READER = "asyncio StreamReader"


@dataclass(frozen=True, slots=True)
class Target:
    """An object reduced to the facts transfers need.

    ``fd`` is -1 for a path, for a closed object, and for a TLS stream with no socket under it
    (then ``closed`` tells which). ``transport`` is set for asyncio-owned sockets, whose
    buffered bytes must reach the wire before any zero-copy byte.
    """

    obj: object
    owner: Owner
    fd: int = -1
    tls: bool = False
    closed: bool = False
    path: str | bytes | os.PathLike[str] | os.PathLike[bytes] | None = None
    transport: Any = None

    @property
    def description(self) -> str:
        name = type(self.obj).__name__
        return self.owner.value if name in self.owner.value else f"{self.owner.value} ({name})"


def _fileno(obj: Any) -> int:
    try:
        fd = obj.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return -1  # a closed file object raises ValueError, a closed socket returns -1
    return fd if isinstance(fd, int) else -1


def unwrap(obj: object) -> Target:
    """Reduce ``obj`` to a :class:`Target`. Raises ``TypeError`` for unsupported objects."""
    if isinstance(obj, bool):
        raise TypeError("expected a file descriptor, file, socket, stream or path, got a bool")
    if isinstance(obj, int):
        if obj < 0:
            raise ValueError(f"file descriptor must be >= 0, got {obj}")
        return Target(obj, Owner.FD, fd=obj)
    if isinstance(obj, str | bytes | os.PathLike):
        return Target(obj, Owner.PATH, path=obj)
    if isinstance(obj, ssl.SSLSocket):
        fd = _fileno(obj)
        return Target(obj, Owner.SSL_SOCKET, fd=fd, tls=True, closed=fd < 0)
    if isinstance(obj, socket.socket):
        fd = _fileno(obj)
        return Target(obj, Owner.SOCKET, fd=fd, closed=fd < 0)
    target = _unwrap_stream(obj)
    if target is not None:
        return target
    if hasattr(obj, "fileno"):
        if isinstance(obj, io.TextIOBase):
            raise TypeError("file must be opened in binary mode, not text mode")
        if getattr(obj, "closed", False) is True:
            return Target(obj, Owner.FILE, closed=True)
        fd = _fileno(obj)
        if fd < 0:  # open, but nothing under it: io.BytesIO, a wrapper of a stream, ...
            raise TypeError(
                f"{type(obj).__qualname__} has no file descriptor (its fileno() fails): zcio "
                "moves bytes between file descriptors; pass a real file, socket or stream"
            )
        return Target(obj, Owner.FILE, fd=fd)
    raise TypeError(
        "expected a file descriptor, file object, socket, path, anyio or trio stream, asyncio "
        f"transport or StreamWriter; got {type(obj).__qualname__}"
    )


def _unwrap_stream(obj: object) -> Target | None:
    import anyio

    if isinstance(obj, anyio.TypedAttributeProvider):
        return _unwrap_anyio(obj)
    if "trio" in sys.modules:
        from ._backends._trio import unwrap_trio

        target = unwrap_trio(obj)
        if target is not None:
            return target
    if "asyncio" in sys.modules:
        from ._backends._asyncio import unwrap_asyncio

        return unwrap_asyncio(obj)
    return None


def _unwrap_anyio(obj: Any) -> Target:
    from anyio.abc import SocketAttribute
    from anyio.streams.tls import TLSAttribute

    tls = obj.extra(TLSAttribute.ssl_object, None) is not None
    raw = obj.extra(SocketAttribute.raw_socket, None)
    if raw is None:
        return Target(obj, Owner.ANYIO, tls=tls)  # e.g. TLS over a memory stream
    fd = _fileno(raw)
    # anyio's asyncio SocketStream writes through a transport; its trio one through the socket.
    transport = getattr(obj, "_transport", None)
    return Target(obj, Owner.ANYIO, fd=fd, tls=tls, closed=fd < 0, transport=transport)
