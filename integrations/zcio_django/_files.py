"""Which file a Django ``FileResponse`` would send, and which ASGI message can send it.

Two steps, kept apart: :func:`file_body` gathers the facts about a response's file (an
``fstat`` and a ``tell``, no reading, no awaiting), and :func:`choose` is a pure table from
those facts and the request's scope to a :class:`Way`. Everything that is not a plain,
unchanged file body goes Django's own way.
"""

from __future__ import annotations

import enum
import io
import os
import stat
from dataclasses import dataclass
from typing import Any

from django.core.files.base import File as DjangoFile
from django.http import FileResponse

from zcio.asgi import PATHSEND, ZEROCOPYSEND

__all__ = ["FileBody", "Way", "choose", "file_body"]

# Django's File wraps a file in a file; a few levels are real (a storage's File around a
# File around the open file), more than this is not a file Django made.
_MAX_WRAPPERS = 4


class Way(enum.Enum):
    """How a response's body goes out."""

    ZEROCOPYSEND = "zerocopysend"  # the server sends the file: offset and count
    PATHSEND = "pathsend"  # the server opens the path and sends all of it
    CHUNKS = "chunks"  # bounded reads, off the event loop when not cached
    HEADERS_ONLY = "headers only"  # HEAD: the server sends no body, so none is read
    DJANGO = "django"  # Django's own send_response, unchanged


@dataclass(frozen=True)
class FileBody:
    """The bytes a ``FileResponse`` promises: ``count`` bytes of the open file ``fd`` from
    ``offset`` (the file object's position now, which is where Django's own reads would
    start). ``file`` is the ``io.FileIO`` under the response's file object, the object to
    hand to the server; ``size`` its size when inspected; ``name`` the name it was opened
    with (a path, or an fd number)."""

    file: io.FileIO
    fd: int
    offset: int
    count: int
    size: int
    name: object = None

    @property
    def whole(self) -> bool:
        """Whether the body is the whole file from its start, as ``pathsend`` sends it."""
        return self.offset == 0 and self.count == self.size

    def same_file_path(self) -> str | None:
        """The absolute path of this very file (same device and inode, checked now); ``None``
        when the file was opened from an fd, or was renamed or replaced since, or its name
        was relative to a working directory that changed. Does a ``stat``: call it only when
        the path is needed."""
        return _same_file_path(self.name, os.fstat(self.fd))


def file_body(response: object) -> FileBody | None:
    """The file body of ``response``; ``None`` unless it is a ``FileResponse`` whose
    content is still the binary, readable, regular file it was made with.

    A middleware that replaced the body (``GZipMiddleware``, anything that sets
    ``streaming_content``) leaves Django's ``file_to_stream`` at ``None``: such a response
    is not a file body. Text files, in-memory files (``BytesIO``, ``SpooledTemporaryFile``,
    whose ``fileno()`` would move it to disk) and other file-likes are not either. The
    count is the response's Content-Length (Django computed it as the bytes from the
    position to the end); without one, the bytes from the position to the end now. Never
    raises: a file that cannot be inspected is left to Django's own path.
    """
    if not isinstance(response, FileResponse):
        return None
    filelike: Any = getattr(response, "file_to_stream", None)
    raw = _raw_file(filelike)
    if raw is None:
        return None
    try:
        if raw.closed or not raw.readable():
            return None
        fd = raw.fileno()
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        offset = filelike.tell()
    except (OSError, ValueError):
        return None
    if not isinstance(offset, int) or offset < 0:
        return None
    length = response.headers.get("Content-Length")
    if length is None:
        count = max(st.st_size - offset, 0)
    elif isinstance(length, str) and length.isascii() and length.isdigit():
        count = int(length)
    else:
        return None  # not a length Django wrote: leave it to Django and the server
    return FileBody(raw, fd, offset, count, st.st_size, raw.name)


def choose(scope: dict[str, Any], body: FileBody | None) -> Way:
    """The way to send ``body`` for a request with ``scope``. Pure: no I/O.

    HEAD needs no body at all; a server advertising ``http.response.zerocopysend`` gets the
    file, offset and count; one advertising ``http.response.pathsend`` gets the path when
    the body is exactly the whole file (the sender then checks that the path still leads to
    it, else sends chunks); otherwise bounded chunks.
    """
    if body is None or scope.get("type") != "http":
        return Way.DJANGO
    if str(scope.get("method", "")).upper() == "HEAD":
        return Way.HEADERS_ONLY
    extensions = scope.get("extensions") or {}
    if ZEROCOPYSEND in extensions:
        return Way.ZEROCOPYSEND
    if PATHSEND in extensions and body.whole:
        return Way.PATHSEND
    return Way.CHUNKS


def _raw_file(filelike: object) -> io.FileIO | None:
    """The ``io.FileIO`` under a binary file object (``open(p, "rb")``, ``FileIO``, Django's
    ``File`` around one); ``None`` for anything else."""
    for _ in range(_MAX_WRAPPERS):
        if isinstance(filelike, DjangoFile):
            filelike = filelike.file
        else:
            break
    if isinstance(filelike, io.BufferedReader | io.BufferedRandom):
        raw = filelike.raw
        return raw if isinstance(raw, io.FileIO) else None
    if isinstance(filelike, io.FileIO):
        return filelike
    return None


def _same_file_path(name: object, st: os.stat_result) -> str | None:
    """``name`` as an absolute path if it still names the open file (same device and inode);
    else ``None`` (opened from an fd, renamed, replaced, or a name relative to a working
    directory that changed since)."""
    if not isinstance(name, str | bytes):
        return None
    try:
        path = os.path.abspath(os.fsdecode(name))
        now = os.stat(path)
    except (OSError, ValueError):
        return None
    if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
        return None
    return path
