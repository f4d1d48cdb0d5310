"""Destinations: one object per transfer that knows how to write to what the caller passed.

A sink answers four questions for the transfer loop, whatever the destination is:

* which fd the kernel should write to (``fd``; for an asyncio transport, a private dup to
  wait on, since its loop refuses a second watcher on the transport's own fd);
* how to wait until that fd is writable (on the running backend, through anyio);
* how to get bytes that the destination already buffers in user space onto the wire first, and
  how to keep other writers out while zero-copy bytes flow (``__aenter__``, see ``_endpoint``);
* how to write user-space bytes when TLS runs in Python (``write_stream``).

:class:`Sink` is the plain-fd sink; each wrapper family's sink is a subclass in its adapter
(``_adapters``), which ``_adapters.open_sink`` picks.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import anyio

from ._endpoint import Action, Endpoint
from ._target import Owner

__all__ = ["Sink"]


class Sink(Endpoint):
    """A destination with a plain fd: sockets, pipes, devices, files, raw descriptors.

    Entering claims it, keeps other writers out (``_fence``) and flushes what it buffers.
    """

    action = Action.SEND

    def _take(self, stack: ExitStack) -> None:
        self._fence(stack)

    async def _prepare(self) -> None:
        await self._flush()

    def _fence(self, stack: ExitStack) -> None:
        """Keep other writers of the same wrapper out while we run (nothing to do for an fd)."""

    async def _flush(self) -> None:
        """Push bytes buffered in user space to the fd. Python file objects may buffer."""
        flush = getattr(self.target.obj, "flush", None)
        if self.target.owner is Owner.FILE and callable(flush):
            flush()

    async def wait_writable(self) -> None:
        await anyio.wait_writable(self.fd)

    def write_fd(self, data: memoryview) -> int:
        """One non-blocking write to the fd; ``BlockingIOError`` when it is full."""
        return os.write(self.fd, data)

    async def write_stream(self, data: bytes) -> None:
        """Write all of ``data`` through the wrapper (only TLS sinks need this)."""
        raise NotImplementedError(f"{self!r} writes through its fd")
