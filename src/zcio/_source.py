"""The file side of ``send_file``: open paths, check kinds, put file positions back."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from ._adapters import unwrap
from ._kinds import Kind
from ._open import learn_filesystem
from ._probe import FdInfo, describe_fd
from ._target import Owner

__all__ = ["FileSource", "open_file_source"]

_FILE_OWNERS = (Owner.FD, Owner.FILE, Owner.PATH)


@dataclass(slots=True)
class FileSource:
    """A readable regular file: its fd, its description, and the file object to reposition."""

    fd: int
    info: FdInfo
    fileobj: Any = None


@asynccontextmanager
async def open_file_source(file: object) -> AsyncIterator[FileSource]:
    """Open ``file`` (a path, binary file object or fd of a regular file) for a transfer.

    Paths are opened in a worker thread (an open can wait for the disk), non-blocking so that a
    FIFO cannot hang the open (it is then refused as not a regular file), and closed on exit;
    fds and file objects stay the caller's. Raises ``TypeError`` for other objects and
    ``ValueError`` for closed files, non-regular files, or files not open for reading.
    """
    target = unwrap(file)
    if target.owner not in _FILE_OWNERS:
        raise TypeError(
            "file must be a path, a binary file object or the fd of a regular file, "
            f"not {target.description}"
        )
    if target.path is not None:
        fd = await anyio.to_thread.run_sync(_open_learning, target.path)
        try:
            yield _checked(fd, None, name=repr(os.fsdecode(target.path)))
        finally:
            os.close(fd)
        return
    if target.closed:
        raise ValueError(f"{target.description} is closed")
    try:
        info = describe_fd(target.fd, owner=target.description)
    except OSError as exc:
        raise ValueError(f"file descriptor {target.fd} is not open: {exc}") from exc
    yield _checked(target.fd, file if target.owner is Owner.FILE else None, info)


def _checked(fd: int, fileobj: Any, info: FdInfo | None = None, *, name: str = "it") -> FileSource:
    info = info or describe_fd(fd, owner="path")
    if info.kind is not Kind.REGULAR_FILE:
        raise ValueError(f"file must be a regular file; {name} is {_what(fd, info.kind)}")
    if not info.readable:
        raise ValueError("file is not open for reading")
    return FileSource(fd, info, fileobj)


#: What ``fstat`` says an fd is, for the kinds that :class:`Kind` calls "other".
_FILE_TYPES = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
)


def _what(fd: int, kind: Kind) -> str:
    """``"a directory"``, ``"a TCP socket"``: what the fd is, with its article."""
    if kind is Kind.OTHER:
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            return "an fd of an unknown type"
        return next((name for test, name in _FILE_TYPES if test(mode)), "an fd of another type")
    return f"a {kind}"


def _open_learning(path: Any) -> int:
    """Open ``path`` (in a worker thread) and learn its filesystem for ``open_cached``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        learn_filesystem(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd
