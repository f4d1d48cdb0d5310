"""What zcio's ASGI integrations share: the names of the two file extensions, opening a
response's file, and telling whether a file message can reach the server.

ASGI is dicts and callables, so nothing here imports a web framework or a server; a framework
of your own can use these pieces as ``zcio_starlette``, ``zcio_litestar`` and ``zcio_uvicorn``
do. Three pieces:

- :data:`ZEROCOPYSEND` and :data:`PATHSEND`, the extensions a server advertises in
  ``scope["extensions"]``, and :func:`without_extensions` to hide them from an app.
- :func:`open_file`: a file opened on the event loop when the kernel can do it from its caches
  (:func:`zcio.open_cached_stat`), else in a worker thread (:func:`open_regular`, which also
  lets zcio learn the file's filesystem, so the next files there open on the loop), with
  :func:`open_in_thread` the worker-thread half on its own. Never anything but a regular
  file, never a wait on a FIFO, never an fd left open on an error or a cancellation.
  :func:`open_static` also refuses the files of ``/proc`` and ``/sys``, whose sizes lie.
- :class:`SendChainChecker`: whether a middleware known to lose file messages wraps the
  ``send`` a response was given. Middleware that wraps ``send`` passes the server's scope on
  unchanged, extensions included, so the scope alone cannot tell. The checker follows the chain
  of wrappers from the response towards the server, through closures, bound methods,
  ``functools.partial``, ``__wrapped__`` and ``send`` attributes of wrapper objects, and stops at
  a bound ``send`` of a server's request cycle (:data:`SERVER_MODULES`): nothing past it is a
  middleware. Wrappers that are not in its table of :class:`Offender` are trusted to pass
  unknown messages on, as Starlette trusts them with ``pathsend``.
- :class:`FileCache`: the open-file cache every integration shares (open fds, identities,
  prebuilt headers and small bodies, revalidated every ``ttl`` seconds), with
  :func:`default_file_cache` (one per thread) and :func:`clear_file_caches`.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import os
import stat
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, TypeVar, TypeVarTuple

import anyio
import anyio.lowlevel
import anyio.to_thread

import zcio

from ._file_cache import (
    CachedFile as CachedFile,
    FileCache as FileCache,
    clear_file_caches as clear_file_caches,
    default_file_cache as default_file_cache,
    identity as identity,
)

_libc = ctypes.CDLL(None, use_errno=True)

__all__ = [
    "EXTENSIONS",
    "PATHSEND",
    "SERVER_MODULES",
    "ZEROCOPYSEND",
    "CachedFile",
    "FileCache",
    "PSEUDO_FILESYSTEMS",
    "NotARegularFileError",
    "Offender",
    "Opened",
    "SendChainChecker",
    "clear_file_caches",
    "default_file_cache",
    "identity",
    "open_file",
    "open_in_thread",
    "open_regular",
    "open_static",
    "without_extensions",
]

for _public in (CachedFile, FileCache, clear_file_caches, default_file_cache, identity):
    _public.__module__ = __name__  # shown (docs, reprs, tracebacks) where users import it
del _public

ZEROCOPYSEND: Final = "http.response.zerocopysend"
"""The message that hands the server an open file, an offset and a count (and ``more_body``)."""
PATHSEND: Final = "http.response.pathsend"
"""The message that hands the server a path, whose whole file is the rest of the body."""
EXTENSIONS: Final = (ZEROCOPYSEND, PATHSEND)
"""Both, in the order a server that serves both advertises them."""

StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]


def without_extensions(
    extensions: Mapping[str, Any] | None, names: Iterable[str] = EXTENSIONS
) -> dict[str, Any] | None:
    """A copy of a scope's ``extensions`` without ``names`` (both file extensions unless
    told), or ``None`` when it has none of them: then the scope can be passed on as it is.
    The mapping given is never modified. Pure: no I/O, never raises."""
    if not extensions:
        return None
    hidden = tuple(names)
    if not any(name in extensions for name in hidden):
        return None
    return {key: value for key, value in extensions.items() if key not in hidden}


# --- Opening a response's file ---------------------------------------------------------------


class Opened(NamedTuple):
    """A regular file open for reading (``O_RDONLY | O_CLOEXEC``, blocking, at position 0),
    and the ``fstat`` made when it was opened. Closing it closes the file; it is also a
    context manager that does."""

    file: io.FileIO
    stat: os.stat_result

    def close(self) -> None:
        """Close the file (again is harmless)."""
        self.file.close()

    @property
    def closed(self) -> bool:
        """Whether the file is closed."""
        return self.file.closed

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()


class NotARegularFileError(OSError):
    """The path names something other than a regular file: a directory, a FIFO, a socket or a
    device. It was opened without waiting (a FIFO with no writer does not block) and closed at
    once, never read. For a directory the error is also an ``IsADirectoryError`` (``errno`` is
    ``EISDIR``); for anything else ``errno`` is ``EINVAL``."""


class _DirectoryError(NotARegularFileError, IsADirectoryError):
    """:class:`NotARegularFileError` for a directory."""


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
# Non-blocking, so that a FIFO (or a device that waits for a carrier) is opened at once;
# no controlling terminal, whatever the path turns out to be.
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _not_regular(path: StrOrBytesPath, mode: int) -> NotARegularFileError:
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    if stat.S_ISDIR(mode):
        return _DirectoryError(errno.EISDIR, f"not a regular file ({kind})", os.fsdecode(path))
    return NotARegularFileError(errno.EINVAL, f"not a regular file ({kind})", os.fsdecode(path))


def open_regular(path: StrOrBytesPath) -> Opened:
    """Open the regular file at ``path`` for reading, and let zcio learn its filesystem
    (:func:`zcio.learn_filesystem`, so that :func:`zcio.open_cached` opens the next files of
    that mount on the event loop). May wait for a disk or a server: call it in a worker
    thread (:func:`open_in_thread`, :func:`open_file`).

    Raises the open's ``OSError`` (``FileNotFoundError``, ``PermissionError``...) and
    :class:`NotARegularFileError` for anything but a regular file, which is opened without
    waiting and closed at once. Nothing is left open when it raises, whatever it raises."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        os.set_blocking(fd, True)  # an ordinary fd for whoever reads it next
        zcio.learn_filesystem(fd)
        return Opened(io.FileIO(fd, "r", closefd=True), st)
    except BaseException:
        os.close(fd)
        raise


#: Filesystems the kernel makes up as they are read (``statfs`` magic numbers): a file's size
#: there says nothing of what a read returns (a procfs file is 0 bytes long and reads text;
#: sysfs's claim 4096), so a static file server must not serve them.
PSEUDO_FILESYSTEMS: Final = {
    0x9FA0: "proc",
    0x62656572: "sysfs",
    0x64626720: "debugfs",
    0x74726163: "tracefs",
    0x73636673: "securityfs",
    0x27E0EB: "cgroup",
    0x63677270: "cgroup2",
    0x62656570: "configfs",
    0xCAFE4A11: "bpf",
    0xDE5E81E4: "efivarfs",
}
_STATFS_SIZE = 256  # more than struct statfs on any architecture; f_type comes first


def open_static(path: StrOrBytesPath) -> Opened:
    """:func:`open_regular`, for a static file server that opens by path: also refuses a file
    on a pseudo filesystem (:data:`PSEUDO_FILESYSTEMS`: ``/proc``, ``/sys``...), with
    :class:`NotARegularFileError`, opened and closed without a read. May wait for a disk or a
    server: call it in a worker thread. Errors are :func:`open_regular`'s, and ``ValueError``
    for a path with a NUL byte; nothing is left open when it raises."""
    opened = open_regular(path)
    try:
        fstype = _filesystem_type(opened.file.fileno())
        if fstype in PSEUDO_FILESYSTEMS:
            kind = f"not a regular file (a {PSEUDO_FILESYSTEMS[fstype]} file)"
            raise NotARegularFileError(errno.EINVAL, kind, os.fsdecode(path))
    except BaseException:
        opened.close()
        raise
    return opened


def _filesystem_type(fd: int) -> int | None:
    """``fstatfs(fd).f_type``; ``None`` if the call fails."""
    buffer = ctypes.create_string_buffer(_STATFS_SIZE)
    if _libc.fstatfs(fd, buffer) != 0:
        return None
    return ctypes.c_ulong.from_buffer(buffer).value & 0xFFFFFFFF


class _SupportsClose(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_SupportsClose | None)
_Ts = TypeVarTuple("_Ts")


async def open_in_thread(
    opener: Callable[[*_Ts], _C], *args: *_Ts, abandon_on_cancel: bool = False
) -> _C:
    """``opener(*args)`` run in a worker thread (anyio's), for a function that opens something
    and returns it (anything with ``close()``, or ``None``), so that what it opened is never
    lost: the caller gets it, or it is closed.

    Errors: whatever ``opener`` raises, raised here; nothing was handed over.

    Cancellation, ``abandon_on_cancel=False`` (the default): the worker thread is waited for
    (shielded), then the cancellation is taken, with what it opened closed. The call ends when
    the open does, which a slow disk or a network filesystem can make long.
    ``abandon_on_cancel=True``: the cancellation is raised at once, and what the thread still
    opens is closed when the thread finishes (by the thread itself). Either way a cancelled
    call opened nothing the caller has to close. On asyncio this includes a plain
    ``Task.cancel()`` from outside anyio (uvicorn's), with ``abandon_on_cancel=True``.
    """
    if not abandon_on_cancel:
        with anyio.CancelScope(shield=True):
            result = await anyio.to_thread.run_sync(opener, *args)
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()
        except BaseException:
            if result is not None:
                result.close()
            raise
        return result
    handoff = _Handoff()

    def run() -> _C:
        opened = opener(*args)
        with handoff.lock:
            if not handoff.abandoned:
                handoff.opened = opened
                return opened
        if opened is not None:
            opened.close()  # the caller is gone: no one else will
        return opened

    try:
        return await anyio.to_thread.run_sync(run, abandon_on_cancel=True)
    except BaseException:
        with handoff.lock:
            handoff.abandoned = True
            # Opened, but not delivered: the cancellation came after the thread finished.
            lost, handoff.opened = handoff.opened, None
        if lost is not None:
            lost.close()
        raise


class _Handoff:
    """What a worker thread opened, between the thread and the call waiting for it: whichever
    of the two finishes second closes it, if the call was cancelled."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.opened: Any = None


async def open_file(
    path: StrOrBytesPath,
    *,
    opener: Callable[[StrOrBytesPath], Opened] = open_regular,
    abandon_on_cancel: bool = False,
) -> Opened:
    """Open the regular file at ``path`` for a response: right here on the event loop when
    the kernel can do it from its caches on a local filesystem (:func:`zcio.open_cached_stat`,
    then nothing is awaited), else in a worker thread (:func:`open_in_thread` of ``opener``,
    :func:`open_regular` unless told: a framework passes its own to add checks).

    Errors are those of ``opener``: for :func:`open_regular`, the open's ``OSError`` and
    :class:`NotARegularFileError`; nothing is left open. Cancellation while the worker thread
    opens: see ``abandon_on_cancel`` in :func:`open_in_thread`; a cancelled call leaves
    nothing open either way.
    """
    # Looked up on the package at each call, so that a replacement (a test forcing the
    # worker thread) is honoured here as in every integration.
    cached = zcio.open_cached_stat(path)
    if cached is not None:
        return Opened(*cached)
    return await open_in_thread(opener, path, abandon_on_cancel=abandon_on_cancel)


# --- Can a file message reach the server? ----------------------------------------------------


@dataclass(frozen=True)
class Offender:
    """A wrapper of ``send`` that would lose, reject or misreport a file message: a function
    whose ``__qualname__`` starts with ``prefix`` in ``module``, or a class of that name
    (or any subclass of it). Matched by name, so that no offender's package is imported."""

    module: str
    prefix: str
    reason: str  # what SendChainChecker.why_not says when it finds it

    def matches(self, module: str, qualname: str) -> bool:
        """Whether a function or class of this module and qualified name is this offender."""
        return module == self.module and qualname.startswith(self.prefix)


SERVER_MODULES: Final = ("uvicorn.protocols.", "zcio_uvicorn.")
"""The modules of servers' request cycles: a bound ``send`` of one of their classes is the
server's own, and ends the chain (uvicorn's and zcio_uvicorn's)."""

# Far more hops than any real stack (an app with five middlewares is about fifteen); past
# this the chain is not understood, and not understood means not trusted.
_MAX_NODES = 256
# Verdicts are kept per code object and per class, which live as long as the app in
# practice; the bound only matters for code generated on the fly.
_MAX_VERDICTS = 4096
_V = TypeVar("_V")


class SendChainChecker:
    """Decides whether a response may send a file message through the ``send`` it was given:
    the scope must be HTTP and advertise the extension, and no :class:`Offender` of
    ``offenders`` may wrap ``send`` (see the module's docstring for how the chain is followed;
    ``servers``: module prefixes whose bound ``send`` ends it).

    No I/O, no awaiting, never raises. It runs for every file response, so whether a function
    or a class is an offender is decided once per code object or class and remembered by this
    checker (each checker has its own table and its own memory)."""

    def __init__(
        self, offenders: Iterable[Offender], *, servers: tuple[str, ...] = SERVER_MODULES
    ) -> None:
        self.offenders = tuple(offenders)
        self.servers = servers
        self._verdicts: dict[object, str | None] = {}
        self._servers: dict[type, bool] = {}

    def why_not(
        self, scope: Mapping[str, Any], send: Callable[..., Any], extension: str = ZEROCOPYSEND
    ) -> str | None:
        """Why a response called with ``scope`` and ``send`` must not send ``extension``'s
        message; ``None`` when it may."""
        if scope.get("type") != "http":
            return "not an HTTP request"
        if extension not in (scope.get("extensions") or {}):
            return f"the server does not advertise {extension}"
        return self.offender_on(send)

    def offender_on(self, send: Callable[..., Any]) -> str | None:
        """The reason of the first offender on the chain of wrappers behind ``send``; ``None``
        if there is none (a chain longer than 256 steps has a reason of its own)."""
        seen: set[int] = set()
        todo: list[Any] = [send]
        while todo:
            node = todo.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if len(seen) > _MAX_NODES:
                return f"the chain of send wrappers is longer than {_MAX_NODES} steps"
            kind = type(node)
            if kind is types.FunctionType:
                reason = self._function_verdict(node)
                if reason is not None:
                    return reason
                for cell in node.__closure__ or ():
                    try:
                        hop = cell.cell_contents
                    except ValueError:  # an empty cell: a variable not bound yet
                        continue
                    if callable(hop) and not isinstance(hop, type):
                        todo.append(hop)
                wrapped = getattr(node, "__wrapped__", None)
                if wrapped is not None:
                    todo.append(wrapped)
            elif kind is types.MethodType:
                owner = node.__self__
                reason = self._class_verdict(type(owner))
                if reason is not None:
                    return reason
                if self._is_server(type(owner)):
                    continue  # the server's own send: the end of the chain
                todo.append(node.__func__)
                todo.extend(_send_attributes(owner))
            elif kind is functools.partial:
                todo.append(node.func)
                todo.extend(node.args)
                todo.extend(node.keywords.values())
            elif callable(node) and not isinstance(node, type | types.BuiltinFunctionType):
                reason = self._class_verdict(kind)
                if reason is not None:
                    return reason
                todo.extend(_send_attributes(node))
        return None

    def _function_verdict(self, function: types.FunctionType) -> str | None:
        code = function.__code__
        try:
            return self._verdicts[code]
        except KeyError:
            pass
        return _remember(self._verdicts, code, self._match(function))

    def _class_verdict(self, cls: type) -> str | None:
        try:
            return self._verdicts[cls]
        except KeyError:
            pass
        reason = None
        for base in cls.__mro__:
            reason = self._match(base)
            if reason is not None:
                break
        return _remember(self._verdicts, cls, reason)

    def _match(self, named: type | types.FunctionType) -> str | None:
        for offender in self.offenders:
            if offender.matches(named.__module__, named.__qualname__):
                return offender.reason
        return None

    def _is_server(self, cls: type) -> bool:
        try:
            return self._servers[cls]
        except KeyError:
            return _remember(self._servers, cls, cls.__module__.startswith(self.servers))


def _remember(table: dict[Any, _V], key: object, value: _V) -> _V:
    if len(table) >= _MAX_VERDICTS:
        table.clear()
    table[key] = value
    return value


def _send_attributes(owner: Any) -> list[Any]:
    """An object's attributes named like a send callable (``send``, ``_send``, ``app_send``).

    Only those: an object's other attributes lead to the app it wraps (towards the response,
    not the server) or to unrelated parts of the app, where an offender is not on this path.
    """
    try:
        attributes = vars(owner)
    except TypeError:  # no __dict__ (slots, builtins)
        return []
    return [
        value
        for name, value in attributes.items()
        if "send" in name and callable(value) and not isinstance(value, type)
    ]
