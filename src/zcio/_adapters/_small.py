"""What the adapters' ``small_send_destination`` share: a socket they may write to right now,
and what they learnt about each object, remembered for the next small send.

The small-send path (``_small_send``) asks for every small body; probing a socket each time
(fstat, fcntl, getsockopt) would cost more than the send. So what cannot change while an
object lives (its kind, TLS, the fd under it) is worked out once per object; the adapters
check what can change (closed, buffered bytes, another task mid-send) on every call.
"""

from __future__ import annotations

import fcntl
import functools
import os
import weakref
from collections.abc import Callable
from typing import Any

from .._kinds import Kind, Method
from .._probe import FdInfo, describe_fd

__all__ = ["SmallDestination", "nonblocking", "remembered", "stream_socket"]

#: The socket fd the small-send path may write to, and its description.
SmallDestination = tuple[int, FdInfo]

#: id(object) -> (a weak reference to it, what ``remembered``'s ``learn`` said of it). A plain
#: dict, not a WeakKeyDictionary: this lookup runs for every small response, and each of those
#: makes a new weak reference per lookup. The reference's callback drops the key when the
#: object dies, before its id can be given to another object.
_cache: dict[int, tuple[weakref.ref[Any], SmallDestination | None]] = {}

_STREAM_SOCKETS = frozenset({Kind.TCP, Kind.UNIX_STREAM})


def remembered(
    obj: object, learn: Callable[[object], SmallDestination | None]
) -> SmallDestination | None:
    """``learn(obj)``, worked out the first time ``obj`` is asked about and remembered while it
    lives. None, never remembered, for an object that cannot be weakly referenced."""
    known = _cache.get(id(obj))
    if known is not None and known[0]() is obj:
        return known[1]
    try:
        ref = weakref.ref(obj, functools.partial(_forget, id(obj)))
    except TypeError:
        return None
    entry = learn(obj)
    _cache[id(obj)] = (ref, entry)
    return entry


def _forget(key: int, ref: weakref.ref[Any]) -> None:
    known = _cache.get(key)
    if known is not None and known[0] is ref:
        del _cache[key]


def stream_socket(fd: int, owner: str) -> SmallDestination | None:
    """``(fd, its description)`` if ``fd`` is an open plaintext TCP or Unix stream socket that
    sendfile may write to; None otherwise. Whether it is non-blocking (it may change) is the
    caller's to check: ``info.nonblocking`` if it probes every time, else :func:`nonblocking`."""
    if fd < 0:
        return None
    try:
        info = describe_fd(fd, owner=owner)
    except OSError:
        return None
    if info.kind not in _STREAM_SOCKETS or Method.SENDFILE not in info.destinations:
        return None
    return fd, info


def nonblocking(fd: int) -> bool:
    """Whether ``fd`` is non-blocking now (False if it is not open)."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK)
    except OSError:
        return False
