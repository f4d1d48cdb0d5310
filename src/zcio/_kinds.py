"""The vocabulary shared by probing, planning and counting: kinds of fd and transfer methods."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Kind", "Method"]


class Kind(StrEnum):
    """What an endpoint is, as far as moving bytes is concerned."""

    REGULAR_FILE = "regular file"
    PIPE = "pipe"
    TCP = "TCP socket"
    UNIX_STREAM = "UNIX stream socket"
    DATAGRAM = "datagram socket"
    TLS = "TLS stream in user space"
    CHAR_DEVICE = "character device"
    OTHER = "other"


class Method(StrEnum):
    """How bytes can move. Every method but ``USERSPACE`` keeps them out of user space."""

    COPY_FILE_RANGE = "copy_file_range"
    SENDFILE = "sendfile"
    SPLICE = "splice"
    TEE = "tee"
    USERSPACE = "userspace"


ZERO_COPY = frozenset(m for m in Method if m is not Method.USERSPACE)
