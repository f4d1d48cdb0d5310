"""Sources for ``splice_stream``, ``tee_stream`` and ``copy``: what to read, and how.

A tap answers, whatever the source is:

* which fd the kernel should read from (``fd``; a private dup for asyncio transports);
* how to wait until it is readable;
* which bytes the wrapper already read ahead into user space (``take_buffered``): they are
  delivered first, and read-ahead is stopped while the transfer runs (``__aenter__``), so
  nothing is reordered, lost or read twice, and the stream is usable afterwards;
* how to read user-space bytes when TLS runs in Python (``read_stream``).

:class:`Tap` is the plain-fd tap; each wrapper family's tap is a subclass in its adapter
(``_adapters``), which ``_adapters.open_tap`` picks.
"""

from __future__ import annotations

import os

import anyio

from ._endpoint import Action, Endpoint
from ._probe import FdInfo
from ._target import Target

__all__ = ["Tap"]


class Tap(Endpoint):
    """A source with a plain fd: sockets, pipes, devices, raw fds; no user-space buffer.

    Entering claims it and stops the wrapper's read-ahead (``_take``).
    """

    action = Action.RECEIVE

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
