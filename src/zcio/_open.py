"""Opening a path for reading on the event loop, when the kernel can do it from memory alone.

Opening a file can wait: for a disk (a directory block that is not cached), or for a server (a
network filesystem revalidates names and sends an OPEN of its own). So zcio opens paths in a
worker thread, which costs a thread round trip per file: more than everything else a small
HTTP file response does. Yet for a file served again and again the kernel has everything in
memory. :func:`open_cached` opens such a file right where it is called, and returns ``None``
whenever that could wait, leaving the caller to use a worker thread.

Every way in walks the path with ``openat2(RESOLVE_CACHED)`` (Linux 5.12+), which walks the
dentry cache only and fails with ``EAGAIN`` when any component would need a lookup on disk or
a revalidation. What remains is the filesystem's own ``open``, which asks a network server or
a FUSE daemon: so the file's mount must be known to be of a type in :data:`LOCAL_FILESYSTEMS`
*before* it is opened. Mounts are learnt by :func:`learn_filesystem`, from
``/proc/self/mountinfo``, in the worker thread that opened the first file there (so the first
file of each mount is always opened in a thread). Two ways, then:

- **On the root's mount** (the usual case: a container's image, a server's disk), once the
  root's mount is learnt local: one ``openat2`` of an absolute path with ``RESOLVE_NO_XDEV``
  as well, which refuses (``EXDEV`` or ``EAGAIN``) to cross into any other mount, so the file
  it opens is on the root's. A refusal costs that one call, then the general way is taken.
  ``O_NONBLOCK`` keeps a FIFO or a lease held by another process from being waited for; a
  file that turns out not to be regular (its ``fstat``, which the caller can have too) is
  closed at once.
- **Anywhere else**: ``openat2(O_PATH)`` (no filesystem ``open`` is called), ``statx`` with
  ``AT_STATX_DONT_SYNC`` on that handle for the type and the mount, and only for a regular file
  on a known-local mount a reopen of the handle through ``/proc/self/fd`` (the same inode:
  nothing can be swapped in between), with ``O_NONBLOCK`` for the same reason.

Either way ``O_NONBLOCK`` is cleared again: the caller gets an ordinary fd. Anything unusual
(no such file, no permission, a symlink loop, not a regular file, a kernel without ``openat2``
or ``statx``'s mount id, a seccomp filter) gives ``None``: the worker thread then opens the path
the ordinary way and raises the ordinary errors. Not covered: an ``fanotify`` permission
listener (an on-access virus scanner) makes every open wait for it, here as anywhere; and the
root's mount is learnt once, so a process that later changes its root (``chroot``) or mount
namespace onto a network filesystem should not use this function.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import io
import os
import stat
import struct

__all__ = [
    "LOCAL_FILESYSTEMS",
    "learn_filesystem",
    "open_cached",
    "open_cached_fd",
    "open_cached_stat",
]

StrOrBytesPath = str | bytes | os.PathLike[str] | os.PathLike[bytes]

#: Filesystems whose ``open`` of an existing file, once its path is cached, reads no disk and
#: asks no server. (overlay: container images, whose layers are local in practice.)
LOCAL_FILESYSTEMS = frozenset(
    {
        "btrfs",
        "ext2",
        "ext3",
        "ext4",
        "f2fs",
        "overlay",
        "ramfs",
        "tmpfs",
        "xfs",
        "zfs",
    }
)

_SYS_OPENAT2 = 437  # the same number on every architecture (Linux 5.6)
_AT_FDCWD = -100
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_CACHED = 0x20  # Linux 5.12
_AT_EMPTY_PATH = 0x1000
_AT_STATX_DONT_SYNC = 0x4000
_STATX_TYPE = 0x1
_STATX_MNT_ID = 0x1000  # Linux 5.8
_STATX_SIZE = 256
# struct statx: stx_mask at 0, stx_mode at 28, stx_dev_major/minor at 136/140, stx_mnt_id at 144.
_MASK, _MODE, _DEV, _MNT_ID = (
    struct.Struct("=I"),
    struct.Struct("=H"),
    struct.Struct("=II"),
    struct.Struct("=Q"),
)
# The kernel only reads struct open_how: one shared, never-written buffer serves every call.
_HOW = ctypes.create_string_buffer(
    struct.pack("=QQQ", os.O_PATH | os.O_CLOEXEC, 0, _RESOLVE_CACHED), 24
)
_REOPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_HOW_ON_ROOT = ctypes.create_string_buffer(
    struct.pack("=QQQ", _REOPEN, 0, _RESOLVE_CACHED | _RESOLVE_NO_XDEV), 24
)

_libc = ctypes.CDLL(None, use_errno=True)
_statx = getattr(_libc, "statx", None)  # glibc 2.28+
#: Turned off for the process when the kernel (or a seccomp filter) lacks what is needed.
_available = _statx is not None and os.path.isdir("/proc/self/fd")
#: (mount id, st_dev) -> whether the mount's filesystem is local. Keyed by both, since a mount
#: id freed by an unmount can be given to a new mount of another filesystem.
_mounts: dict[tuple[int, int], bool] = {}
#: Whether the root's mount is known local (learnt with the first mount, see learn_filesystem).
_root_local: bool | None = None


def open_cached_fd(path: StrOrBytesPath) -> tuple[int, os.stat_result] | None:
    """An fd open for reading (``O_RDONLY | O_CLOEXEC``) on the regular file at ``path``, and
    its ``fstat``; or ``None`` if opening it here could wait for a disk or a server, or would
    fail. Never raises ``OSError``: the caller opens the path in a worker thread instead, which
    raises the right error. See the module's docstring for how."""
    global _available
    if not _available:
        return None
    name = os.fsencode(path)
    if b"\0" in name:
        return None
    if _root_local and name.startswith(b"/"):
        fd = _libc.syscall(_SYS_OPENAT2, _AT_FDCWD, name, _HOW_ON_ROOT, 24)
        if fd >= 0:
            return regular_fd(fd)
        if ctypes.get_errno() not in (errno.EXDEV, errno.EAGAIN):
            return None  # missing, no permission...: the worker thread will say
        # The path leads to another mount (EXDEV; EAGAIN when met in the cached walk), or
        # is not cached: the general way below finds out which.
    handle = _libc.syscall(_SYS_OPENAT2, _AT_FDCWD, name, _HOW, 24)
    if handle < 0:
        if ctypes.get_errno() in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            _available = False  # no openat2, no RESOLVE_CACHED, or a seccomp filter
        return None
    try:
        if not _local_regular_file(handle):
            return None
        try:
            fd = os.open(f"/proc/self/fd/{handle}", _REOPEN)
        except OSError:
            return None
    finally:
        os.close(handle)
    return regular_fd(fd)


def available() -> bool:
    """Whether ``openat2`` with ``RESOLVE_CACHED`` and ``statx``'s mount id work here."""
    return _available


def openat2(dirfd: int, name: bytes, how: ctypes.Array[ctypes.c_char]) -> int:
    """``openat2(dirfd, name, how)``: an fd, or -1 with the errno in ``ctypes.get_errno()``.
    Turns the cached way off for the process when the kernel lacks ``openat2``."""
    global _available
    fd: int = _libc.syscall(_SYS_OPENAT2, dirfd, name, how, 24)
    if fd < 0 and ctypes.get_errno() in (errno.ENOSYS, errno.EPERM):
        _available = False
    return fd


def is_local(fd: int) -> bool:
    """Whether the mount of ``fd`` is known local (learnt here if new: reads mountinfo)."""
    if not _available:
        return False
    key = _mount_key(fd)
    if key is None:
        return False
    if key not in _mounts:
        _mounts[key] = _read_mount(key)
    return _mounts[key]


def regular_fd(fd: int) -> tuple[int, os.stat_result] | None:
    """``fd`` made blocking again, and its stat, if it is a regular file; otherwise closed,
    and ``None``."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        fcntl.fcntl(fd, fcntl.F_SETFL, 0)  # clears O_NONBLOCK (no other settable flag is set)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_cached(path: StrOrBytesPath) -> io.FileIO | None:
    """Open the regular file at ``path`` for reading, right here, if the kernel can do it from
    memory alone; ``None`` otherwise (then open it in a worker thread).

    It can when every component of the path is in the kernel's dentry cache and the file is
    on a local filesystem (ext4, xfs, btrfs, tmpfs, overlay and a few others) that
    :func:`learn_filesystem` has seen: no disk read, no network round trip, so an event loop
    can call it. It gives ``None``, having opened nothing, when the path is not cached, is on
    another filesystem (NFS, FUSE, SMB...) or one not learnt yet, is not a regular
    file, cannot be opened (missing, no permission), or when the kernel is older than 5.12 or
    a seccomp filter hides ``openat2``. It never raises ``OSError`` and never awaits.

    On the root's mount the path is opened (non-blocking, without a controlling terminal)
    before its type is known, to save three system calls: a FIFO or device node found there
    is opened and closed again at once, as ``os.open`` would, never read. On other mounts its
    type is checked first and only a regular file is opened.

    ``zcio_starlette.FileResponse`` and ``zcio_uvicorn``'s ``pathsend`` use it before falling
    back to a worker thread (which opens the path and calls :func:`learn_filesystem`, as
    :func:`send_file` does for paths).
    """
    opened = open_cached_stat(path)
    return None if opened is None else opened[0]


def open_cached_stat(path: StrOrBytesPath) -> tuple[io.FileIO, os.stat_result] | None:
    """:func:`open_cached`, and the file's ``os.fstat`` (made to check that it is a regular
    file): for a caller that needs both, one system call fewer."""
    opened = open_cached_fd(path)
    if opened is None:
        return None
    fd, st = opened
    try:
        return io.FileIO(fd, "r", closefd=True), st
    except BaseException:
        os.close(fd)
        raise


def _local_regular_file(handle: int) -> bool:
    """Whether the ``O_PATH`` handle is a regular file on a local filesystem (no I/O asked)."""
    assert _statx is not None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    flags = _AT_EMPTY_PATH | _AT_STATX_DONT_SYNC
    if _statx(handle, b"", flags, _STATX_TYPE | _STATX_MNT_ID, buf) != 0:
        return False
    (mask,) = _MASK.unpack_from(buf, 0)
    if not mask & _STATX_MNT_ID:
        global _available
        _available = False  # Linux < 5.8: no way to tell the mount without asking it
        return False
    (mode,) = _MODE.unpack_from(buf, 28)
    if not stat.S_ISREG(mode):
        return False
    major, minor = _DEV.unpack_from(buf, 136)
    (mnt_id,) = _MNT_ID.unpack_from(buf, 144)
    # A mount not seen yet is not looked up here (that reads a file): learn_filesystem does it.
    return _mounts.get((mnt_id, os.makedev(major, minor)), False)


def _mount_key(fd: int) -> tuple[int, int] | None:
    if _statx is None:
        return None
    buf = ctypes.create_string_buffer(_STATX_SIZE)
    flags = _AT_EMPTY_PATH | _AT_STATX_DONT_SYNC
    if _statx(fd, b"", flags, _STATX_MNT_ID, buf) != 0:
        return None
    (mask,) = _MASK.unpack_from(buf, 0)
    if not mask & _STATX_MNT_ID:
        return None
    major, minor = _DEV.unpack_from(buf, 136)
    (mnt_id,) = _MNT_ID.unpack_from(buf, 144)
    return mnt_id, os.makedev(major, minor)


def learn_filesystem(fd: int) -> None:
    """Note whether the file open at ``fd`` is on a local filesystem, so that
    :func:`open_cached` opens files there from then on. Call it from a worker thread, after
    opening a path there: the first time a mount is seen it reads ``/proc/self/mountinfo``.
    Cheap for a mount seen before (one ``statx``); never raises ``OSError``."""
    global _root_local
    if not _available:
        return
    key = _mount_key(fd)
    if key is not None and key not in _mounts:
        _mounts[key] = _read_mount(key)
    if _root_local is None:
        _root_local = _learn_root()


def _learn_root() -> bool:
    """Whether the process's root is on a mount known local (learnt here if new)."""
    try:
        root = os.open("/", os.O_PATH | os.O_CLOEXEC)  # the root dentry is always cached
    except OSError:
        return False
    try:
        return is_local(root)
    finally:
        os.close(root)


def _read_mount(key: tuple[int, int]) -> bool:
    """Look a mount up in ``/proc/self/mountinfo`` (procfs: made from memory, never waits)."""
    mnt_id, dev = key
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        # "36 35 98:0 /root /mnt opts [optional fields...] - ext4 /dev/root rw"
        fields, _, after = line.partition(b" - ")
        parts = fields.split(b" ", 3)
        if len(parts) < 3 or not parts[0].isdigit() or int(parts[0]) != mnt_id:
            continue
        major, _, minor = parts[2].partition(b":")
        if not (major.isdigit() and minor.isdigit()):
            return False
        fstype = after.split(b" ", 1)[0].decode("ascii", "replace")
        return os.makedev(int(major), int(minor)) == dev and fstype in LOCAL_FILESYSTEMS
    return False
