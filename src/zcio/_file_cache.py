"""The open-file cache: what serving a small file needs, kept between requests.

A file response costs far more than the same bytes from memory: a path walk, an ``open``, an
``fstat``, headers and an ETag built, a ``close``, often a worker thread for the open. Yet most
static requests ask for the same few files again and again. :class:`FileCache` keeps, per path,
the open fd, the file's full identity, whatever an integration built from them (its response
headers, in :attr:`CachedFile.memo`), and the bytes of very small files, so that a request for
a known file costs a dictionary lookup.

What the cache promises (the revalidation bound):

- **A body never disagrees with its headers.** An entry's identity is the ``fstat`` of the fd
  it holds, ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``; whatever an integration
  memoised was built from that stat. An entry served from its fd is ``fstat``-ed again on every
  hit (one system call, no path walk): a file rewritten in place, truncated or grown since is
  reopened at once, never served under its old headers. An entry holding the file's bytes
  holds a snapshot read and ``fstat``-ed as one (the identity before and after the read is the
  same), so it is served whole, as it was, until revalidated. A file that shrinks *during* a
  send leaves the server short of bytes: the server must abort the connection (zcio_uvicorn
  does).
- **A name is re-resolved at least every ``ttl`` seconds.** A file replaced by ``rename``,
  deleted, made unreadable, or its folder renamed: the old file (whole) may be served for up to
  ``ttl`` seconds after the change, then the name is opened again and compared with the full
  identity; a change reopens. ``ttl=0`` reopens the name on every request (headers and small
  bodies still come from the cache when the identity is unchanged). A name that was not a
  regular file is remembered as such for at most ``ttl`` too.
- **Bounded.** At most ``max_files`` entries (by default a quarter of the soft
  ``RLIMIT_NOFILE``, at most 4096), least recently used dropped first; an entry dropped while a
  response still sends from its fd closes the fd when that response releases it (reference
  counted), so an fd number is never closed under a sender. In-memory bodies are at most
  ``max_body`` bytes each and ``max_memory`` in all. When an open fails with ``EMFILE`` or
  ``ENFILE`` the cache closes every fd no response is using and tries once more.
- **Owned by one thread.** A cache is used by the thread (the event loop's) that first asks
  it; asked from another thread it answers ``None`` (the caller serves the file uncached), so
  no lock is taken on the hot path. :func:`default_file_cache` gives each thread its own.

Opening follows the rules of :mod:`zcio.asgi`: on the event loop only when the kernel can do it
from its caches on a local filesystem (:func:`zcio.open_cached_stat`,
:meth:`zcio.Folder.open_cached`), else in a worker thread; files of a folder are always opened
beneath its descriptor (:class:`zcio.Folder`), so containment under races is the folder's.
Small bodies are read on the loop only with ``preadv2(RWF_NOWAIT)`` (pages already cached),
never waiting for a disk.
"""

from __future__ import annotations

import ctypes
import errno
import io
import os
import resource
import struct
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from . import _open
from ._folder import Folder

__all__ = ["CachedFile", "FileCache", "clear_file_caches", "default_file_cache", "identity"]

StrPath = str | os.PathLike[str]
Identity = tuple[int, int, int, int, int]

# Every cache made, so that a test (or a fork handler) can close them all.
_CACHES: weakref.WeakSet[FileCache] = weakref.WeakSet()
_DEFAULTS = threading.local()
_NO_FD = frozenset({errno.EMFILE, errno.ENFILE})
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)


def identity(st: os.stat_result) -> Identity:
    """The full identity of a file, as :class:`FileCache` compares it: ``(st_dev, st_ino,
    st_size, st_mtime_ns, st_ctime_ns)``. Two stats with the same identity describe the same
    file in the same state (as far as the filesystem's timestamps can tell); the inode alone
    does not (a file edited in place, or a new file given a freed inode number)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class CachedFile:
    """One regular file in a :class:`FileCache`: an fd open on it (or its bytes), its
    ``fstat`` and what integrations built from it.

    Hold it with :meth:`acquire` for as long as a response sends from :attr:`file`, and
    :meth:`release` it afterwards (``with entry:`` does both): the fd is closed only when the
    entry has left the cache *and* nobody holds it. Never close :attr:`file` yourself.
    """

    __slots__ = ("_cache", "_refs", "_retired", "body", "expires", "file", "memo", "stat")

    def __init__(
        self, file: io.FileIO | None, st: os.stat_result, body: bytes | None, expires: float
    ) -> None:
        #: The open file (``O_RDONLY``, blocking); ``None`` when :attr:`body` holds the bytes.
        #: Send from it with an explicit offset (``zerocopysend``'s ``offset``, ``os.sendfile``,
        #: ``os.pread``): other responses share it, so its position means nothing.
        self.file = file
        #: The ``fstat`` the entry was made from (and every memo built).
        self.stat = st
        #: The whole file, for files of at most ``max_body`` bytes; else ``None``.
        self.body = body
        #: Free for integrations: what they built from :attr:`stat` (headers), under a key of
        #: their own. Dropped with the entry, so never stale.
        self.memo: dict[Hashable, Any] = {}
        self.expires = expires
        self._refs = 0
        self._retired = False
        self._cache: FileCache | None = None

    @property
    def size(self) -> int:
        """The file's size in :attr:`stat` (what ``Content-Length`` must say)."""
        return self.stat.st_size

    def acquire(self) -> None:
        """Keep :attr:`file` open until :meth:`release`, even if the entry leaves the cache."""
        self._refs += 1

    def release(self) -> None:
        """Undo one :meth:`acquire`; closes the fd if the entry has left the cache and this
        was the last holder."""
        self._refs -= 1
        if self._refs == 0 and self._retired:
            self._close()

    def __enter__(self) -> CachedFile:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _retire(self) -> None:
        """Leave the cache: the fd is closed now, or by the last :meth:`release`."""
        self._retired = True
        if self._refs == 0:
            self._close()

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
        cache, self._cache = self._cache, None
        if cache is not None and self.body is not None:
            cache._memory -= len(self.body)

    def __repr__(self) -> str:
        where = (
            "memory" if self.body is not None else f"fd {self.file.fileno() if self.file else -1}"
        )
        return f"<CachedFile size={self.size} {where} refs={self._refs}>"


class _Missing:
    """A name that was not a regular file openable here, remembered until ``expires``."""

    __slots__ = ("expires",)

    def __init__(self, expires: float) -> None:
        self.expires = expires


class FileCache:
    """A per-thread cache of open files for file responses (see the module's docstring for
    what it promises).

    ``ttl``: seconds an entry is trusted before its name is opened again and compared (default
    1; ``0``: every request). ``max_files``: most entries, and so most cached fds (default: a
    quarter of the soft ``RLIMIT_NOFILE``, at most 4096). ``max_body``: files of at most this
    many bytes are kept in memory and their fd closed (default 16 KiB; ``0``: none, not even
    empty files).
    ``max_memory``: most bytes of bodies in all (default 16 MiB).

    :meth:`get` is the one way in. Counters (:attr:`hits`, :attr:`misses`,
    :attr:`revalidations`, :attr:`changes`) are plain attributes, for tests and curiosity.
    """

    def __init__(
        self,
        *,
        ttl: float = 1.0,
        max_files: int | None = None,
        max_body: int = 16 << 10,
        max_memory: int = 16 << 20,
    ) -> None:
        if ttl < 0:
            raise ValueError(f"ttl must be 0 or more, not {ttl}")
        if max_files is None:
            max_files = default_max_files()
        if max_files < 1:
            raise ValueError(f"max_files must be 1 or more, not {max_files}")
        self.ttl = float(ttl)
        self.max_files = max_files
        self.max_body = max_body
        self.max_memory = max_memory
        self._entries: OrderedDict[Hashable, CachedFile | _Missing] = OrderedDict()
        self._owner: int | None = None
        self._memory = 0
        self.hits = self.misses = self.revalidations = self.changes = 0
        _CACHES.add(self)

    def __repr__(self) -> str:
        return (
            f"<zcio.asgi.FileCache ttl={self.ttl} entries={len(self._entries)}/{self.max_files}"
            f" hits={self.hits} misses={self.misses}>"
        )

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return True  # a cache, even empty, is a cache (``cache or default`` must keep it)

    @property
    def open_fds(self) -> int:
        """How many fds the entries still in the cache hold (not counting retired ones that a
        response still sends from)."""
        return sum(
            1 for e in self._entries.values() if isinstance(e, CachedFile) and e.file is not None
        )

    async def get(self, path: StrPath, *, folder: Folder | None = None) -> CachedFile | None:
        """The cached regular file at ``path`` (relative to ``folder`` and opened beneath it,
        or a path of its own), opened or revalidated if needed; ``None`` when the cache cannot
        answer: the name is not a regular file that can be opened (missing, a folder, outside
        ``folder``, no permission, any error), or this thread does not own the cache. On
        ``None`` serve the file the uncached way, which raises the proper error.

        A hit awaits nothing at all (no checkpoint, no thread). A miss opens on the event loop
        when the kernel can do it from its caches, else in a worker thread; a cancellation
        during that wait is taken with nothing left open (the thread's result is closed).
        Errors are never raised: ``None``.

        Relative paths without a folder are keyed as given: a process that changes its working
        directory should pass absolute paths.
        """
        owner = threading.get_ident()
        if self._owner != owner:
            if self._owner is not None:
                return None
            self._owner = owner
        key: Any = path if folder is None else (folder, path)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.expires:
            if type(entry) is _Missing:
                self.hits += 1
                return None
            assert isinstance(entry, CachedFile)
            if entry.file is None or _unchanged(entry):
                self.hits += 1
                self._entries.move_to_end(key)
                return entry
        return await self._open(key, path, folder, entry, now)

    def forget(self, path: StrPath, *, folder: Folder | None = None) -> None:
        """Drop the entry for ``path`` (its fd is closed once no response uses it)."""
        key: Any = path if folder is None else (folder, path)
        entry = self._entries.pop(key, None)
        if isinstance(entry, CachedFile):
            entry._retire()

    def clear(self) -> None:
        """Drop every entry; fds are closed now, or when the last response using one ends.
        The cache stays usable. Any thread may call it when the owner is not running."""
        entries = list(self._entries.values())
        self._entries.clear()
        for entry in entries:
            if isinstance(entry, CachedFile):
                entry._retire()

    close = clear

    def __del__(self) -> None:
        entries = getattr(self, "_entries", None)
        if entries:
            self.clear()

    def flush_fds(self) -> int:
        """Drop every entry holding an fd that no response uses (what an ``EMFILE`` does);
        how many fds were closed."""
        idle = [
            key
            for key, e in self._entries.items()
            if isinstance(e, CachedFile) and e.file is not None and e._refs == 0
        ]
        for key in idle:
            entry = self._entries.pop(key)
            assert isinstance(entry, CachedFile)
            entry._retire()
        return len(idle)

    async def _open(
        self,
        key: Hashable,
        path: StrPath,
        folder: Folder | None,
        old: CachedFile | _Missing | None,
        now: float,
    ) -> CachedFile | None:
        if isinstance(old, CachedFile):
            self.revalidations += 1
        else:
            self.misses += 1
        opened = _open_here(path, folder)
        if opened is _MOVED:
            self._store(key, None, now)
            return None
        if opened is None:
            try:
                opened = await _open_away(path, folder)
            except OSError as exc:
                if exc.errno not in _NO_FD or not self.flush_fds():
                    self._store(key, None, now)
                    return None
                try:
                    opened = await _open_away(path, folder)
                except OSError:
                    self._store(key, None, now)
                    return None
            # Another request may have filled the key while this one waited for the thread.
            current = self._entries.get(key)
            if current is not old and isinstance(current, CachedFile):
                old = current
        if opened is None or opened is _MOVED:
            self._store(key, None, now)
            return None
        assert isinstance(opened, tuple)
        file, st = opened
        if isinstance(old, CachedFile) and not old._retired and identity(old.stat) == identity(st):
            file.close()  # the same file as before: keep its fd, its body and its memo
            old.expires = now + self.ttl
            self._entries.move_to_end(key)
            return old
        if isinstance(old, CachedFile):
            self.changes += 1
        body = self._read_body(file, st)
        if body is not None:
            file.close()
        entry = CachedFile(None if body is not None else file, st, body, now + self.ttl)
        return self._store(key, entry, now)

    def _store(self, key: Hashable, entry: CachedFile | None, now: float) -> CachedFile | None:
        replaced = self._entries.pop(key, None)
        if isinstance(replaced, CachedFile):
            replaced._retire()
        if entry is None:
            if self.ttl > 0:
                self._entries[key] = _Missing(now + self.ttl)
        else:
            entry._cache = self
            if entry.body is not None:
                self._memory += len(entry.body)
            self._entries[key] = entry
        while len(self._entries) > self.max_files:
            _, dropped = self._entries.popitem(last=False)
            if isinstance(dropped, CachedFile):
                dropped._retire()
        return entry

    def _read_body(self, file: io.FileIO, st: os.stat_result) -> bytes | None:
        """The whole file if it is small, its pages are cached (never a wait for a disk on
        the loop) and it did not change while read; else ``None`` (the fd is kept instead)."""
        size = st.st_size
        if (
            self.max_body <= 0
            or size > self.max_body
            or self._memory + size > self.max_memory
            or not _RWF_NOWAIT
        ):
            return None
        buffer = bytearray(size + 1)  # one byte more: a file that grew reads long
        try:
            got = os.preadv(file.fileno(), [buffer], 0, _RWF_NOWAIT) if size else 0
            after = os.fstat(file.fileno())
        except OSError:  # EAGAIN: not all cached; EOPNOTSUPP: no RWF_NOWAIT here
            return None
        if got != size or identity(after) != identity(st):
            return None
        return bytes(memoryview(buffer)[:size])


def _unchanged(entry: CachedFile) -> bool:
    """Whether the file behind the entry's fd still has the entry's identity (one ``fstat``)."""
    assert entry.file is not None
    try:
        st = os.fstat(entry.file.fileno())
    except (OSError, ValueError):
        return False
    old = entry.stat
    return (
        st.st_size == old.st_size
        and st.st_mtime_ns == old.st_mtime_ns
        and st.st_ctime_ns == old.st_ctime_ns
    )


#: What ``_open_here`` says of a folder no longer at its path (renamed, removed, replaced).
_MOVED: Any = object()
_HOW_PATH = ctypes.create_string_buffer(
    struct.pack("=QQQ", os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY, 0, 0x20),
    24,  # RESOLVE_CACHED
)


def _open_here(path: StrPath, folder: Folder | None) -> Any:
    """Opened on the loop, if the kernel can from its caches: the file and its stat, ``None``
    (try a worker thread), or ``_MOVED``. Never raises ``OSError``.

    A folder's files are opened beneath its descriptor, which keeps serving the folder it was
    opened on; but a server looking files up by the folder's *path* (Starlette) finds nothing
    once the folder is renamed. So the path must still name the same folder."""
    if folder is None:
        return _open.open_cached_stat(path)
    if not _open.available():
        return None
    handle = _open.openat2(-100, os.fsencode(folder.path), _HOW_PATH)  # AT_FDCWD
    if handle < 0:
        return _MOVED if ctypes.get_errno() in (errno.ENOENT, errno.ENOTDIR) else None
    try:
        here, there = os.fstat(handle), os.fstat(folder.fd)
    except (OSError, ValueError):
        return None
    finally:
        os.close(handle)
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        return _MOVED
    return folder.open_cached(os.fspath(path))


async def _open_away(
    path: StrPath, folder: Folder | None
) -> tuple[io.FileIO, os.stat_result] | None:
    """Opened in a worker thread: ``None`` for a name that is not a regular file here;
    ``EMFILE``/``ENFILE`` raise, any other error is ``None`` too. The thread is waited for
    (shielded): a cancellation meanwhile is taken after it, with the file closed."""
    with anyio.CancelScope(shield=True):
        opened = await anyio.to_thread.run_sync(_open_blocking, path, folder)
    try:
        await anyio.lowlevel.checkpoint_if_cancelled()
    except BaseException:
        if opened is not None:
            opened[0].close()
        raise
    return opened


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def _open_blocking(path: StrPath, folder: Folder | None) -> tuple[io.FileIO, os.stat_result] | None:
    """The open of :func:`_open_away`, in the worker thread: may wait for a disk or a server.
    Only a regular file (a FIFO is opened without waiting and closed at once)."""
    try:
        if folder is not None:
            here, there = os.stat(folder.path), os.fstat(folder.fd)
            if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
                return None  # the folder moved: see _open_here
            return folder.open(os.fspath(path))
        opened = _open.regular_fd(os.open(path, _OPEN_FLAGS))
        if opened is None:
            return None
        _open.learn_filesystem(opened[0])  # so that the next files there open on the loop
        return io.FileIO(opened[0], "r", closefd=True), opened[1]
    except OSError as exc:
        if exc.errno in _NO_FD:
            raise
        return None
    except ValueError:  # a NUL byte, a closed folder
        return None


def default_max_files() -> int:
    """A quarter of the soft ``RLIMIT_NOFILE``, at least 16 and at most 4096."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 256
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 4096
    return max(16, min(soft // 4, 4096))


#: The options :func:`default_file_cache` makes its caches with (tests change them).
DEFAULT_OPTIONS: dict[str, Any] = {}


def default_file_cache() -> FileCache:
    """This thread's default :class:`FileCache` (made with the defaults at first use): the one
    ``zcio_starlette``'s responses share unless given another."""
    cache: FileCache | None = getattr(_DEFAULTS, "cache", None)
    if cache is None:
        cache = _DEFAULTS.cache = FileCache(**DEFAULT_OPTIONS)
    return cache


def clear_file_caches() -> None:
    """:meth:`FileCache.clear` on every cache of the process (tests: before counting fds)."""
    for cache in list(_CACHES):
        cache.clear()
