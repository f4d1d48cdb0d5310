"""Socket options around a file body: TCP_CORK while it is sent, SO_LINGER 0 to abort."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

__all__ = ["CORK_FROM", "cork", "reset_on_close", "uncork"]

#: Bodies from this size on are sent with TCP_CORK set, as nginx's ``tcp_nopush``: the kernel
#: then sends full segments, and the client is woken half as often.
CORK_FROM = 128 << 10

_TCP = (socket.AF_INET, socket.AF_INET6)


def cork(sock: Any, count: int) -> Any:
    """Set TCP_CORK on ``sock`` (a TCP socket object, or None) for a body of ``count`` bytes;
    returns the socket to :func:`uncork` later, or None when nothing was set."""
    if count < CORK_FROM or sock is None or sock.family not in _TCP:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    except (OSError, ValueError):
        return None
    return sock


def uncork(sock: Any) -> None:
    """Uncorking pushes out what is left at once: no 200 ms wait for the last partial segment.
    A socket closed meanwhile is left alone."""
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)


def reset_on_close(sock: Any) -> None:
    """SO_LINGER 0: closing ``sock`` sends a reset, not a FIN. A body cut short must never
    look complete, and a close-delimited (HTTP/1.0) body would look complete after a FIN."""
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
