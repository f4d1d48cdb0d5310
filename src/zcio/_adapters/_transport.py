"""Sockets owned by an asyncio transport, whoever wraps it (asyncio itself, or anyio).

A transport owns its socket: it may hold bytes the application wrote but the kernel has not
taken yet, and the loop refuses a second watcher on the fd ("File descriptor N is used by
transport"). So a zero-copy send here

1. waits until the transport's write buffer is empty, so earlier ``write()`` bytes (HTTP
   headers, say) reach the wire before the file's bytes;
2. refuses other writers while it runs: ``StreamWriter.write``/``writelines``/``write_eof``
   raise ``RuntimeError``, as ``transport.write`` does during ``loop.sendfile``; the transport's
   own methods are fenced the same way where the transport allows it (the default loop's do;
   uvloop's are read-only, so there a direct ``transport.write`` during a send is not caught);
3. waits on a private ``dup`` of the socket fd: same socket, its own watcher.

This is what ``loop.sendfile`` does on the default loop, minus two of its limits: uvloop has no
``loop.sendfile`` at all, and ``loop.sendfile`` cannot say how many bytes went out when it is
cancelled. Here the transfer loop counts every byte itself.

Only public transport methods are used here; the wrappers' private state is read by their own
adapters (``_asyncio``, ``_anyio``), which subclass these classes.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from .._constants import CLOSE_POLL
from .._errors import BrokenDestination, SourceFailed
from .._probe import FdInfo, describe_fd
from .._sinks import Sink
from .._taps import Tap
from .._target import Target

__all__ = ["TransportSink", "TransportTap", "describe_transport", "write_transport"]

_FENCED = ("write", "writelines", "write_eof")

_described: weakref.WeakKeyDictionary[Any, FdInfo] = weakref.WeakKeyDictionary()


def describe_transport(target: Target) -> FdInfo:
    """A transport's socket does not change while the transport lives: probe it once.

    (Closed transports are refused before this runs, so a reused fd number is never described
    from the cache.) Transports that cannot be weakly referenced are probed every time.
    """
    transport = target.transport
    try:
        info = _described.get(transport)
    except TypeError:
        info = None
    if info is None or info.fd != target.fd:
        info = describe_fd(target.fd, tls=target.tls, owner=target.description)
        with contextlib.suppress(TypeError):
            _described[transport] = info
    return info


class TransportSink(Sink):
    """A destination whose socket belongs to an asyncio transport (a bare transport here;
    StreamWriters and anyio streams are subclasses in their adapters).

    zcio writes to, and waits on, a private dup of the transport's fd, made when the transfer
    takes the transport: the loop refuses a second watcher on the transport's own fd, and the
    transport may close that fd (and the kernel reuse its number) while the transfer waits. A
    small body that goes out in one call (``_small_send``) never takes the transport.
    """

    @classmethod
    def create(cls, target: Target) -> TransportSink:
        return cls(target, describe_transport(target))

    @property
    def transport(self) -> Any:
        return self.target.transport

    def _take(self, stack: ExitStack) -> None:
        if self.tls:  # TLS bytes go through the transport itself, in order
            return
        # The transfer's own dup, taken while the transport is open: at any of our awaits the
        # transport may close its socket, and the kernel may give that fd number to another
        # file or another client's socket; the dup always names this connection.
        if self.transport.is_closing():
            raise BrokenDestination("the transport closed before the transfer began", 0)
        self.fd = os.dup(self.target.fd)
        stack.callback(os.close, self.fd)
        self._fence(stack)

    async def _prepare(self) -> None:
        if not self.tls:
            await self._flush()

    def _fence(self, stack: ExitStack) -> None:
        obj = self.target.obj
        for holder in (obj, self.transport) if obj is not self.transport else (obj,):
            _shadow_writes(holder, stack, closing=self._closing)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        if isinstance(exc, BrokenPipeError) and self._closing():
            raise anyio.ClosedResourceError from exc

    def _closing(self) -> bool:
        """Whether the wrapper's owner is closing it (so ``EPIPE`` is our side's doing, and
        ``write_eof`` may pass the fence). A bare transport or a ``StreamWriter`` never tells:
        see the anyio adapter."""
        return False

    async def _flush(self) -> None:
        transport = self.transport
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise BrokenDestination("the transport closed before its buffer drained", 0)
            await wait_watching(anyio.wait_writable, self.fd, transport)
            await checkpoint()  # the transport's own writer runs on this loop turn

    async def wait_writable(self) -> None:
        await wait_watching(anyio.wait_writable, self.fd, self.transport)

    async def write_stream(self, data: bytes) -> None:
        await write_transport(self.transport, data)


async def wait_watching(waiter: Callable[[int], Awaitable[None]], fd: int, transport: Any) -> None:
    """Wait for ``fd`` (our dup of a transport's socket) to be ready, noticing when somebody
    closes the transport meanwhile: the dup keeps the socket open, so no readiness would come.
    Raises ``anyio.ClosedResourceError`` then."""
    while True:
        with anyio.move_on_after(CLOSE_POLL):
            await waiter(fd)
            return
        if transport.is_closing():
            raise anyio.ClosedResourceError


async def write_transport(transport: Any, data: bytes) -> None:
    """Write ``data`` to a bare transport, holding back while its buffer is over the mark.

    A bare transport tells only its protocol when to pause; poll its buffer against the
    high-water mark instead, so a slow peer holds us back rather than filling memory.
    ``ConnectionResetError`` if it closes first."""
    if transport.is_closing():
        raise ConnectionResetError("the transport is closing")
    transport.write(data)
    _, high = transport.get_write_buffer_limits()
    delay = 0.0005
    while transport.get_write_buffer_size() > high:
        if transport.is_closing():
            raise ConnectionResetError("the transport closed with bytes unsent")
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.05)
    await checkpoint()


def _refuse(*args: object, **kwargs: object) -> None:
    raise RuntimeError("unable to write: a zcio zero-copy send is in progress on this stream")


def _shadow_writes(holder: object, stack: ExitStack, closing: Callable[[], bool]) -> None:
    """Make ``holder.write`` & co. raise until ``stack`` closes; skip objects without a dict.

    Closing wins over the fence: ``write_eof`` goes through once ``closing()`` says the owner
    is being closed (anyio before 4.16 closes a stream with ``write_eof`` first).
    """
    if not hasattr(holder, "__dict__"):
        return  # uvloop's transports: read-only attributes
    for name in _FENCED:
        if name in vars(holder):
            continue  # someone else shadows it already; leave theirs alone
        refuse = _refuse
        original = getattr(holder, name, None)
        if name == "write_eof" and callable(original):
            refuse = _refuse_unless(closing, original)
        setattr(holder, name, refuse)
        stack.callback(delattr, holder, name)


def _refuse_unless(closing: Callable[[], bool], original: Callable[[], object]) -> Any:
    def write_eof() -> None:
        if not closing():
            _refuse()
        original()

    return write_eof


class TransportTap(Tap):
    """A source whose socket belongs to an asyncio transport.

    Entering stops the transport's read-ahead (``pause_reading``), so from then on the kernel
    socket is the only place bytes come from; the bytes the wrapper already holds are handed
    over first by ``take_buffered`` (in the wrapper's adapter). Leaving restores the reading
    state. The loop refuses a second watcher on the transport's fd, so waits use a private dup.
    """

    @classmethod
    def create(cls, target: Target) -> TransportTap:
        return cls(target, describe_fd(target.fd, tls=target.tls, owner=target.description))

    def _take(self, stack: ExitStack) -> None:
        transport = self.target.transport
        if transport.is_reading():
            transport.pause_reading()
            stack.callback(self._resume)
        if not self.tls:
            self.fd = os.dup(self.target.fd)
            stack.callback(os.close, self.fd)

    def _resume(self) -> None:
        if not self.target.transport.is_closing():
            self.target.transport.resume_reading()

    async def wait_readable(self) -> None:
        try:
            await wait_watching(anyio.wait_readable, self.fd, self.target.transport)
        except anyio.ClosedResourceError as exc:
            raise SourceFailed(exc) from exc
