"""What an object passed in by the caller is reduced to: the fd underneath and who owns it.

The adapters (``_adapters``) build :class:`Target` values; everything after them works on
targets only and never looks at the caller's object again except through its adapter.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["Owner", "Target", "fileno"]


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


def fileno(obj: Any) -> int:
    """``obj.fileno()``, or -1 when it has none (closed, or nothing underneath)."""
    try:
        fd = obj.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return -1  # a closed file object raises ValueError, a closed socket returns -1
    return fd if isinstance(fd, int) else -1
