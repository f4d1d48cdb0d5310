"""asyncio transports and StreamWriters, on the default loop and on uvloop.

A transport owns its socket: it may hold bytes the application wrote but the kernel has not
taken yet, and the loop refuses a second watcher on the fd ("File descriptor N is used by
transport"). So a zero-copy send here

1. waits until the transport's write buffer is empty, so earlier ``write()`` bytes (HTTP
   headers, say) reach the wire before the file's bytes;
2. refuses other writers while it runs: ``StreamWriter.write``/``writelines``/``write_eof``
   raise ``RuntimeError``, as ``transport.write`` does during ``loop.sendfile``; the transport's
   own methods are fenced the same way where the transport allows it (the default loop's do;
   uvloop's are read-only, so there a direct ``transport.write`` during a send is not caught);
3. works on a private ``dup`` of the socket fd: same socket, its own watcher.

This is what ``loop.sendfile`` does on the default loop, minus two of its limits: uvloop has no
``loop.sendfile`` at all, and ``loop.sendfile`` cannot say how many bytes went out when it is
cancelled. Here the transfer loop counts every byte itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import weakref
from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import anyio
from anyio.lowlevel import checkpoint

from .._errors import BrokenDestination, SourceFailed
from .._kinds import Method
from .._objects import Owner, Target, _fileno
from .._probe import FdInfo, describe_fd
from .._sinks import Sink
from .._taps import Tap

__all__ = ["TransportSink", "quick_destination", "transport_tap", "unwrap_asyncio"]

_TRANSPORT_METHODS = ("get_extra_info", "write", "is_closing", "get_write_buffer_size")
#: How often a wait on a transport's socket checks whether the transport was closed meanwhile.
CLOSE_POLL = 0.25
_FENCED = ("write", "writelines", "write_eof")


def _is_transport(obj: object) -> bool:
    return isinstance(obj, asyncio.WriteTransport) or all(
        callable(getattr(obj, name, None)) for name in _TRANSPORT_METHODS
    )


def unwrap_asyncio(obj: object) -> Target | None:
    transport: Any
    if isinstance(obj, asyncio.StreamWriter):
        owner, transport = Owner.WRITER, obj.transport
    elif isinstance(obj, asyncio.StreamReader):
        transport = getattr(obj, "_transport", None)
        if transport is None:
            raise ValueError("this StreamReader is not attached to a transport")
        owner = Owner.READER
    elif _is_transport(obj):
        owner, transport = Owner.TRANSPORT, obj
    else:
        return None
    tls = transport.get_extra_info("sslcontext") is not None or (
        transport.get_extra_info("ssl_object") is not None
    )
    sock = transport.get_extra_info("socket") or transport.get_extra_info("pipe")
    fd = -1 if sock is None else _fileno(sock)
    closed = fd < 0 or transport.is_closing()
    return Target(obj, owner, fd=fd, tls=tls, closed=closed, transport=transport)


_described: weakref.WeakKeyDictionary[Any, FdInfo] = weakref.WeakKeyDictionary()


def _describe(target: Target) -> FdInfo:
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


#: id(transport or writer) -> (a weak reference to it, its quick_destination entry). A plain
#: dict, not a WeakKeyDictionary: this lookup runs for every small response, and each of those
#: makes a new weak reference per lookup. The reference's callback drops the key when the
#: object dies, before its id can be given to another object.
_quick: dict[int, tuple[weakref.ref[Any], tuple[int, FdInfo] | None]] = {}


def quick_destination(obj: object) -> tuple[int, FdInfo] | None:
    """The socket fd and description of ``obj``, an asyncio transport or ``StreamWriter``, if
    zcio may write to that socket right now, synchronously, keeping the order of bytes: a
    plaintext stream socket, its transport open, nothing in its write buffer. ``None``
    otherwise, and for every other kind of object (they take the general path).

    What does not change while a transport lives (kind, TLS, the fd) is worked out once per
    object; the transport's state is checked on every call.
    """
    known = _quick.get(id(obj))
    if known is not None and known[0]() is obj:
        entry = known[1]
    else:
        try:
            ref = weakref.ref(obj, functools.partial(_forget, id(obj)))
        except TypeError:  # not weakly referenceable: never a transport we know
            return None
        entry = _quick_entry(obj)
        _quick[id(obj)] = (ref, entry)
    if entry is None:
        return None
    transport: Any = obj.transport if isinstance(obj, asyncio.StreamWriter) else obj
    if transport.is_closing() or transport.get_write_buffer_size():
        return None
    return entry


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    known = _quick.get(key)
    if known is not None and known[0] is ref:
        del _quick[key]


def _quick_entry(obj: object) -> tuple[int, FdInfo] | None:
    # Only the asyncio objects with no send guard of their own: a StreamWriter or a transport.
    # (anyio's SocketStream holds a guard that another task may hold between two awaits.)
    if not isinstance(obj, asyncio.StreamWriter) and not _is_transport(obj):
        return None
    target = unwrap_asyncio(obj)
    if target is None or target.closed or target.tls:
        return None
    try:
        info = _describe(target)
    except OSError:
        return None
    if Method.SENDFILE not in info.destinations or not info.nonblocking:
        return None
    return target.fd, info


class TransportSink(Sink):
    """A destination whose socket belongs to an asyncio transport (StreamWriter, anyio stream).

    zcio writes to the transport's own fd; only to *wait* for it does it need a private dup,
    since the loop refuses a second watcher on the transport's fd. So the dup is made at the
    first wait, and a small body that goes out in one call never pays for it.
    """

    @classmethod
    def create(cls, target: Target) -> TransportSink:
        return cls(target, _describe(target))

    @property
    def transport(self) -> Any:
        return self.target.transport

    def _take(self, stack: ExitStack) -> None:
        if not self.tls:  # TLS bytes go through the transport itself, in order
            self._fence(stack)

    async def _prepare(self) -> None:
        if not self.tls:
            await self._flush()

    def _waitable_fd(self) -> int:
        if self.fd == self.target.fd:
            self.fd = os.dup(self.target.fd)
            self._exit.callback(os.close, self.fd)
        return self.fd

    def _fence(self, stack: ExitStack) -> None:
        obj = self.target.obj
        guard = getattr(obj, "_send_guard", None)  # anyio's asyncio SocketStream
        if guard is not None and hasattr(guard, "__enter__"):
            stack.enter_context(guard)
        for holder in (obj, self.transport) if obj is not self.transport else (obj,):
            _shadow_writes(holder, stack, closing=self._closed_by_anyio)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
        if isinstance(exc, BrokenPipeError) and self._closed_by_anyio():
            raise anyio.ClosedResourceError from exc

    def _closed_by_anyio(self) -> bool:
        """Whether ``aclose()`` was called on the anyio stream we write through.

        anyio before 4.16 closes a ``SocketStream`` with ``shutdown(SHUT_WR)`` first, so a
        send running in another task meets ``EPIPE``, which alone reads as the peer's doing.
        anyio sets its private ``_closed`` flag first; the stream's own ``send`` would then
        raise ``ClosedResourceError``, and so does zcio. (anyio 4.16 aborts the transport, which
        our waits notice as a closed transport.)
        """
        return (
            self.target.owner is Owner.ANYIO and getattr(self.target.obj, "_closed", False) is True
        )

    async def _flush(self) -> None:
        transport = self.transport
        while transport.get_write_buffer_size():
            if transport.is_closing():
                raise BrokenDestination("the transport closed before its buffer drained", 0)
            await _wait(anyio.wait_writable, self._waitable_fd(), transport)
            await checkpoint()  # the transport's own writer runs on this loop turn

    async def wait_writable(self) -> None:
        await _wait(anyio.wait_writable, self._waitable_fd(), self.transport)

    async def write_stream(self, data: bytes) -> None:
        obj: Any = self.target.obj
        if self.target.owner is Owner.ANYIO:
            await obj.send(data)
        elif self.target.owner is Owner.WRITER:
            obj.write(data)
            await obj.drain()
        else:
            await _write_transport(self.transport, data)


async def _wait(waiter: Any, fd: int, transport: Any) -> None:
    """Wait for ``fd`` (our dup of a transport's socket) to be ready, noticing when somebody
    closes the transport meanwhile: the dup keeps the socket open, so no readiness would come."""
    while True:
        with anyio.move_on_after(CLOSE_POLL):
            await waiter(fd)
            return
        if transport.is_closing():
            raise anyio.ClosedResourceError


async def _write_transport(transport: Any, data: bytes) -> None:
    # A bare transport tells only its protocol when to pause; poll its buffer against the
    # high-water mark instead, so a slow peer holds us back rather than filling memory.
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


class _TransportTap(Tap):
    """A source whose socket belongs to an asyncio transport.

    Entering stops the transport's read-ahead (``pause_reading``), so from then on the kernel
    socket is the only place bytes come from; the bytes the protocol already holds are handed
    over first by ``take_buffered``. Leaving restores the reading state. The loop refuses a
    second watcher on the transport's fd, so waits use a private dup of it.
    """

    def _take(self, stack: ExitStack) -> None:
        obj = self.target.obj
        guard = getattr(obj, "_receive_guard", None)  # anyio's asyncio SocketStream
        if guard is not None and hasattr(guard, "__enter__"):
            stack.enter_context(guard)
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
            await _wait(anyio.wait_readable, self.fd, self.target.transport)
        except anyio.ClosedResourceError as exc:
            raise SourceFailed(exc) from exc


class StreamReaderTap(_TransportTap):
    """An asyncio ``StreamReader``: its ``_buffer`` holds what the transport read ahead."""

    def __init__(self, target: Target, info: Any) -> None:
        super().__init__(target, info)
        reader: asyncio.StreamReader = target.obj  # type: ignore[assignment]
        self.reader = reader

    def take_buffered(self, limit: int) -> bytes:
        reader: Any = self.reader
        if reader.exception() is not None:
            raise reader.exception()
        buf: bytearray = reader._buffer
        data = bytes(buf[:limit])
        del buf[:limit]
        self.at_eof = reader.at_eof()
        return data

    def _resume(self) -> None:
        # The reader may have paused the transport itself (buffer over its limit); it resumes
        # only when its buffer drains, which we just did for it.
        reader: Any = self.reader
        if getattr(reader, "_paused", False):
            reader._paused = False
        super()._resume()

    async def read_stream(self, limit: int) -> bytes:
        return await self.reader.read(limit)


class AnyioAsyncioTap(_TransportTap):
    """anyio's ``SocketStream`` on asyncio: its protocol keeps a queue of received chunks."""

    def take_buffered(self, limit: int) -> bytes:
        protocol: Any = getattr(self.target.obj, "_protocol", None)
        if protocol is None:
            return b""
        queue = protocol.read_queue
        out = bytearray()
        while queue and len(out) < limit:
            chunk = queue.popleft()
            take = limit - len(out)
            if len(chunk) > take:
                queue.appendleft(chunk[take:])
                chunk = chunk[:take]
            out += chunk
        if not queue:
            protocol.read_event.clear()
            self.at_eof = bool(protocol.is_at_eof)
        return bytes(out)


def transport_tap(target: Target) -> Tap:
    info = describe_fd(target.fd, tls=target.tls, owner=target.description)
    if target.owner is Owner.READER:
        return StreamReaderTap(target, info)
    return AnyioAsyncioTap(target, info)
