"""Plain non-blocking TCP sockets for the proxy: listen, accept and connect on any backend.

The proxy hands zcio raw sockets, not anyio streams: a stream on asyncio reads ahead into an
unbounded user-space queue from the moment it exists, so a client could fill the proxy's
memory while the target is still being connected, and those bytes would then be copied. A raw
socket is read only by ``splice(2)``, when the other side can take the bytes.
"""

from __future__ import annotations

import errno
import os
import socket

import anyio

__all__ = ["accept", "connect", "format_address", "listen"]

BACKLOG = 1024


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets: one per address ``host`` resolves to."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # every family on the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def accept(listener: socket.socket) -> tuple[socket.socket, str]:
    """The next connection, non-blocking, with ``TCP_NODELAY``; and the peer's address."""
    while True:
        try:
            sock, address = listener.accept()
        except BlockingIOError:
            await anyio.wait_readable(listener)
            continue
        except OSError as exc:
            if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                continue  # the client left before we took it
            raise
        _tune(sock)
        return sock, format_address(address)


async def connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking socket to the first address of ``host`` that answers.

    Raises the last ``OSError`` when none does. Cancellation closes the half-open socket.
    """
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    error: OSError = OSError(errno.EHOSTUNREACH, f"{host} has no address")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            code = sock.connect_ex(address)
            if code == errno.EINPROGRESS:
                await anyio.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                _tune(sock)
                return sock
            error = OSError(code, os.strerror(code))
        except BaseException:
            sock.close()
            raise
        sock.close()
    raise error


def _tune(sock: socket.socket) -> None:
    sock.setblocking(False)
    # A relay forwards what it got at once; Nagle would hold small writes back for an ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def format_address(address: object) -> str:
    """``("::1", 80, 0, 0)`` -> ``"[::1]:80"``; ``("1.2.3.4", 80)`` -> ``"1.2.3.4:80"``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
