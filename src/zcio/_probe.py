"""What an fd is and what it can do: fstat, fcntl and getsockopt, never awaiting.

``describe_target`` describes what an adapter reduced the caller's object to (``_target``);
``zcio.probe`` (in ``_inspect``) is that after the adapters' ``unwrap``.
The capability table here says which methods each kind supports as a source and as a
destination; which method is chosen for a *pair* is ``_plan``'s business.
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from dataclasses import dataclass

from ._kinds import Kind, Method
from ._target import Target

__all__ = ["CAPABILITIES", "FdInfo", "describe_fd", "describe_path", "describe_target"]

SENDFILE, SPLICE, TEE = Method.SENDFILE, Method.SPLICE, Method.TEE
COPY_FILE_RANGE, USERSPACE = Method.COPY_FILE_RANGE, Method.USERSPACE

# kind -> (methods it supports as a source, methods it supports as a destination).
# sendfile(2) reads through the page cache, so only regular files are its sources; splice(2)
# needs a pipe on one side, which zcio provides when neither end is one; tee(2) is pipe to pipe.
CAPABILITIES: dict[Kind, tuple[frozenset[Method], frozenset[Method]]] = {
    Kind.REGULAR_FILE: (
        frozenset({COPY_FILE_RANGE, SENDFILE, SPLICE, USERSPACE}),
        frozenset({COPY_FILE_RANGE, SENDFILE, SPLICE, USERSPACE}),
    ),
    Kind.PIPE: (frozenset({SPLICE, TEE, USERSPACE}), frozenset({SENDFILE, SPLICE, TEE, USERSPACE})),
    Kind.TCP: (frozenset({SPLICE, USERSPACE}), frozenset({SENDFILE, SPLICE, USERSPACE})),
    Kind.UNIX_STREAM: (frozenset({SPLICE, USERSPACE}), frozenset({SENDFILE, SPLICE, USERSPACE})),
    Kind.CHAR_DEVICE: (frozenset({SPLICE, USERSPACE}), frozenset({SENDFILE, SPLICE, USERSPACE})),
    # Datagram and seqpacket sockets keep message boundaries that splice would not; user-space
    # TLS must encrypt every byte in Python; the kernel has nothing for the rest.
    Kind.DATAGRAM: (frozenset({USERSPACE}), frozenset({USERSPACE})),
    Kind.TLS: (frozenset({USERSPACE}), frozenset({USERSPACE})),
    Kind.OTHER: (frozenset({USERSPACE}), frozenset({USERSPACE})),
}

_NONE: frozenset[Method] = frozenset()


@dataclass(frozen=True, slots=True)
class FdInfo:
    """A frozen description of one endpoint, as :func:`zcio.probe` saw it.

    ``sources`` and ``destinations`` are the methods it supports in each role, already
    narrowed by its flags (a write-only fd is no source; an ``O_APPEND`` file only takes
    user-space writes, since the kernel refuses sendfile, splice and copy_file_range into it).
    """

    kind: Kind
    fd: int
    nonblocking: bool
    readable: bool
    writable: bool
    append: bool
    owner: str
    sources: frozenset[Method]
    destinations: frozenset[Method]
    detail: str = ""
    #: ``(st_dev, st_ino)``: the same socket or file seen through any fd or wrapper.
    identity: tuple[int, int] = (0, 0)
    #: Size in bytes for a regular file when probed, else -1.
    size: int = -1

    def __str__(self) -> str:
        flags = ", ".join(
            name
            for name, on in (
                ("non-blocking", self.nonblocking),
                ("readable", self.readable),
                ("writable", self.writable),
                ("O_APPEND", self.append),
            )
            if on
        )
        where = f"fd {self.fd}" if self.fd >= 0 else "path"
        return f"{self.kind} ({where}, {self.owner}{', ' + flags if flags else ''})"


def _socket_kind(fd: int) -> Kind:
    # socket.socket(fileno=fd) would take ownership; ask the kernel directly through a dup-free
    # wrapper that we detach before it can close anything.
    sock = socket.socket(fileno=fd)
    try:
        stype = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        family = sock.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
    finally:
        sock.detach()
    if stype == socket.SOCK_STREAM:
        if family in (socket.AF_INET, socket.AF_INET6):
            return Kind.TCP
        if family == socket.AF_UNIX:
            return Kind.UNIX_STREAM
        return Kind.OTHER
    if stype in (socket.SOCK_DGRAM, socket.SOCK_SEQPACKET):
        return Kind.DATAGRAM
    return Kind.OTHER


def _kind_of_mode(mode: int) -> Kind | None:
    if stat.S_ISREG(mode):
        return Kind.REGULAR_FILE
    if stat.S_ISFIFO(mode):
        return Kind.PIPE
    if stat.S_ISCHR(mode):
        return Kind.CHAR_DEVICE
    if stat.S_ISSOCK(mode):
        return None  # needs getsockopt
    return Kind.OTHER


def describe_fd(fd: int, *, tls: bool = False, owner: str = "fd", detail: str = "") -> FdInfo:
    """Describe an open fd. Raises ``OSError`` (EBADF) if it is not open.

    ``tls=True`` marks a socket whose TLS runs in user space: only user-space copies are
    allowed, whatever the socket underneath could do.
    """
    st = os.fstat(fd)
    identity = (st.st_dev, st.st_ino)
    kind = _kind_of_mode(st.st_mode)
    if kind is None:
        kind = _socket_kind(fd)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    access = flags & os.O_ACCMODE
    readable = access in (os.O_RDONLY, os.O_RDWR)
    writable = access in (os.O_WRONLY, os.O_RDWR)
    if tls:
        detail = detail or f"over a {kind}"
        kind = Kind.TLS
    return _with_capabilities(
        kind,
        fd=fd,
        nonblocking=bool(flags & os.O_NONBLOCK),
        readable=readable,
        writable=writable,
        append=bool(flags & os.O_APPEND),
        owner=owner,
        detail=detail,
        identity=identity,
        size=st.st_size if kind is Kind.REGULAR_FILE else -1,
    )


def describe_path(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> FdInfo:
    """Describe what opening ``path`` for reading would give, without opening it."""
    st = os.stat(path)
    kind = _kind_of_mode(st.st_mode) or Kind.OTHER  # a socket file cannot be opened
    return _with_capabilities(
        kind,
        fd=-1,
        nonblocking=False,
        readable=os.access(path, os.R_OK),
        writable=os.access(path, os.W_OK),
        append=False,
        owner="path",
        detail=os.fsdecode(path),
        identity=(st.st_dev, st.st_ino),
        size=st.st_size if kind is Kind.REGULAR_FILE else -1,
    )


def _with_capabilities(
    kind: Kind,
    *,
    fd: int,
    nonblocking: bool,
    readable: bool,
    writable: bool,
    append: bool,
    owner: str,
    detail: str,
    identity: tuple[int, int] = (0, 0),
    size: int = -1,
) -> FdInfo:
    sources, destinations = CAPABILITIES[kind]
    return FdInfo(
        kind=kind,
        fd=fd,
        nonblocking=nonblocking,
        readable=readable,
        writable=writable,
        append=append,
        owner=owner,
        sources=sources if readable else _NONE,
        destinations=(destinations & {Method.USERSPACE} if append else destinations)
        if writable
        else _NONE,
        detail=detail,
        identity=identity,
        size=size,
    )


def describe_target(target: Target) -> FdInfo:
    """Describe what an adapter reduced an object to (see ``zcio.probe``). Raises
    ``ValueError`` for a closed object and ``OSError`` for an fd that is not open."""
    if target.path is not None:
        return describe_path(target.path)
    if target.closed:
        raise ValueError(f"{target.description} is closed")
    if target.fd < 0:  # TLS over a stream that has no fd (a memory stream, say)
        return _with_capabilities(
            Kind.TLS,
            fd=-1,
            nonblocking=True,
            readable=True,
            writable=True,
            append=False,
            owner=target.description,
            detail="no file descriptor underneath",
        )
    return describe_fd(target.fd, tls=target.tls, owner=target.description)
