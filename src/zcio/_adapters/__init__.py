"""The registry of adapters: which module knows the object a caller passed.

One adapter per wrapper family, each the only place that recognises its objects, builds
their sink and tap, and names their closed and broken exception types:

=============  ==============================================  ===========================
adapter        objects                                         loaded
=============  ==============================================  ===========================
``_fd``        fds, paths, sockets, file objects               always
``_ssl``       ``ssl.SSLSocket``                               always
``_anyio``     anyio streams (either backend)                  always: zcio runs on anyio
``_trio``      trio ``SocketStream``, ``SSLStream``            once trio is imported
``_asyncio``   transports, ``StreamWriter``, ``StreamReader``  once asyncio is imported
=============  ==============================================  ===========================

(``_transport`` holds what the asyncio and anyio adapters share: sockets owned by an asyncio
transport; ``_small`` what the adapters' ``small_send_destination`` share.) Loop-specific
adapters are imported here, lazily, as anyio's ``get_async_backend`` imports its backends:
the only import inside a function in zcio.
"""

from __future__ import annotations

import importlib
import sys
from typing import Protocol, cast

from .._errors import ClosedDestination, ClosedSource, register_resource_errors
from .._probe import FdInfo
from .._sinks import Sink
from .._taps import Tap
from .._target import Owner, Target
from . import _anyio, _fd, _ssl

__all__ = ["in_trio_run", "open_sink", "open_tap", "small_send_destination", "unwrap"]


class Adapter(Protocol):
    """What every adapter module provides."""

    CLOSED_ERRORS: tuple[type[BaseException], ...]
    BROKEN_ERRORS: tuple[type[BaseException], ...]

    def unwrap(self, obj: object) -> Target | None: ...

    def open_sink(self, target: Target) -> Sink: ...

    def open_tap(self, target: Target) -> Tap: ...


class SmallSendAdapter(Protocol):
    """The extra of the adapters whose objects the small-send path may write to
    synchronously (``_fd``, ``_anyio``, ``_trio``, ``_asyncio``)."""

    def small_send_destination(self, obj: object) -> tuple[int, FdInfo] | None: ...


class TrioAdapter(Protocol):
    """The extra of the trio adapter: whether the caller runs under trio."""

    def in_trio_run(self) -> bool: ...


#: Which adapter serves each owner; the lazy ones by module name.
_FAMILY: dict[Owner, str] = {
    Owner.FD: "_fd",
    Owner.FILE: "_fd",
    Owner.PATH: "_fd",
    Owner.SOCKET: "_fd",
    Owner.SSL_SOCKET: "_ssl",
    Owner.ANYIO: "_anyio",
    Owner.TRIO: "_trio",
    Owner.TRANSPORT: "_asyncio",
    Owner.WRITER: "_asyncio",
    Owner.READER: "_asyncio",
}
#: The lazy adapters and the library each needs imported before it is worth loading.
_LAZY = {"_trio": "trio", "_asyncio": "asyncio"}
#: The lazy adapters that answer ``small_send_destination``, in the order they are asked.
_SMALL_SEND = ("_trio", "_asyncio")
_loaded: dict[str, Adapter] = {}


def _register(name: str, adapter: Adapter) -> Adapter:
    _loaded[name] = adapter
    register_resource_errors(adapter.CLOSED_ERRORS, adapter.BROKEN_ERRORS)
    return adapter


for _name, _module in (("_fd", _fd), ("_ssl", _ssl), ("_anyio", _anyio)):
    _register(_name, cast(Adapter, _module))
del _name, _module


def _adapter(name: str) -> Adapter:
    """The adapter ``name``, imported the first time it is asked for."""
    adapter = _loaded.get(name)
    if adapter is None:
        module = importlib.import_module(f"{__name__}.{name}")
        adapter = _register(name, cast(Adapter, module))
    return adapter


def _running(name: str) -> Adapter | None:
    """A lazy adapter if its library is imported (its objects cannot exist otherwise)."""
    return _adapter(name) if _LAZY[name] in sys.modules else None


def unwrap(obj: object) -> Target:
    """Reduce ``obj`` to a :class:`~zcio._target.Target`, asking each adapter in turn.
    Raises ``TypeError`` for unsupported objects (``ValueError`` for a negative fd, or a
    ``StreamReader`` with no transport)."""
    target = _ssl.unwrap(obj) or _fd.unwrap(obj) or _anyio.unwrap(obj)
    for name in _LAZY:  # trio first, then asyncio
        if target is None and (adapter := _running(name)) is not None:
            target = adapter.unwrap(obj)
    target = target or _fd.unwrap_file(obj)
    if target is None:
        raise TypeError(
            "expected a file descriptor, file object, socket, path, anyio or trio stream, "
            f"asyncio transport or StreamWriter; got {type(obj).__qualname__}"
        )
    return target


def open_sink(obj: object) -> Sink:
    """The sink for ``obj``. Raises ``TypeError``/``ValueError`` for wrong objects and
    :class:`~zcio.ClosedDestination` for closed ones, before anything moves."""
    target = unwrap(obj)
    if target.owner is Owner.PATH:
        raise TypeError("the destination must be an open file, socket or stream, not a path")
    if target.owner is Owner.READER:
        raise TypeError("a StreamReader cannot be written to: pass its StreamWriter")
    if target.closed:
        raise ClosedDestination(f"{target.description} is closed", 0)
    return _adapter(_FAMILY[target.owner]).open_sink(target)


def open_tap(obj: object) -> Tap:
    """The tap for ``obj``. Raises ``TypeError``/``ValueError`` for wrong objects and
    :class:`~zcio.ClosedSource` for closed ones, before anything moves. Regular files are
    not taps for ``send_file`` and ``copy``: they read them by offset (see ``_source``)."""
    target = unwrap(obj)
    if target.owner is Owner.PATH:
        raise TypeError("a path is not a stream: open it, or use zcio.copy")
    if target.owner in (Owner.WRITER, Owner.TRANSPORT):
        raise TypeError(
            "an asyncio StreamWriter or transport cannot be read from: pass the StreamReader"
        )
    if target.closed:
        raise ClosedSource(f"{target.description} is closed", 0)
    return _adapter(_FAMILY[target.owner]).open_tap(target)


def small_send_destination(obj: object) -> tuple[int, FdInfo] | None:
    """Where the small-send path (``_small_send``) may write ``obj``'s bytes synchronously:
    plain stream sockets and their fds, anyio and trio ``SocketStream``, asyncio transports
    and ``StreamWriter`` qualify, each as its own adapter says; None for everything else."""
    found = _fd.small_send_destination(obj) or _anyio.small_send_destination(obj)
    for name in _SMALL_SEND:
        if found is None and (adapter := _running(name)) is not None:
            found = cast(SmallSendAdapter, adapter).small_send_destination(obj)
    return found


def in_trio_run() -> bool:
    """Whether the caller runs under trio (never, while trio has not been imported)."""
    adapter = _running("_trio")
    return adapter is not None and cast(TrioAdapter, adapter).in_trio_run()
