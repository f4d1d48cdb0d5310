"""The checks of a transfer's arguments, made before anything moves.

Each raises ``TypeError`` or ``ValueError``: the call's own mistake, which must never be taken
for something the kernel cannot do.
"""

from __future__ import annotations

from ._constants import MAX_OFFSET
from ._kinds import Kind
from ._probe import FdInfo

__all__ = ["check_count", "check_distinct", "check_range"]


def check_count(count: object) -> None:
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool):
            raise TypeError(f"count must be an int or None, got {type(count).__name__}")
        if count < 0:
            raise ValueError(f"count must be >= 0 or None, got {count}")


def check_range(offset: object, count: object) -> None:
    if not isinstance(offset, int) or isinstance(offset, bool):
        raise TypeError(f"offset must be an int, got {type(offset).__name__}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    check_count(count)
    if offset + (count if isinstance(count, int) else 0) > MAX_OFFSET:
        raise ValueError(f"offset + count must be at most 2**63 - 1, got {offset} + {count}")


# Kinds whose source and destination must differ: a file sent into itself grows for ever (and
# overlapping copy_file_range ranges are EINVAL), a pipe spliced into itself is EINVAL. A
# socket may be both (an echo: what the peer sends goes back to it).
_NOT_INTO_ITSELF = frozenset({Kind.REGULAR_FILE, Kind.PIPE})


def check_distinct(src: FdInfo, dst: FdInfo) -> None:
    """``ValueError`` if ``src`` and ``dst`` are the same file or pipe (by ``st_dev, st_ino``,
    so other fds of it too), raised before any byte moves."""
    if dst.kind in _NOT_INTO_ITSELF and src.identity == dst.identity != (0, 0):
        raise ValueError(f"the source and the destination are the same {dst.kind}")
