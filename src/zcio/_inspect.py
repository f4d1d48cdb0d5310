"""Looking without moving: :func:`probe` describes one endpoint, :func:`plan` a pair.

Nothing here reads, writes or awaits.
"""

from __future__ import annotations

from ._adapters import unwrap
from ._kinds import Kind, Method
from ._knowledge import KNOWLEDGE
from ._plan import Plan, choose
from ._probe import FdInfo, describe_target

__all__ = ["FILE_METHODS", "STREAM_METHODS", "choose_now", "plan", "probe"]

#: What a transfer from a regular file offers; from a stream.
FILE_METHODS = frozenset({Method.COPY_FILE_RANGE, Method.SENDFILE})
STREAM_METHODS = frozenset({Method.SPLICE})


def probe(obj: object) -> FdInfo:
    """Describe ``obj``: what it is, whether it is non-blocking, and what it supports.

    ``obj`` may be an int fd, anything with ``fileno()`` (sockets, file objects), an
    ``ssl.SSLSocket``, an ``os.PathLike``/``str``/``bytes`` path, an anyio ``SocketStream`` or
    ``TLSStream``, a trio ``SocketStream`` or ``SSLStream``, an asyncio transport or
    ``StreamWriter``. Nothing is read, written or awaited. Raises ``TypeError`` for other
    objects and ``ValueError`` for a closed one.
    """
    return describe_target(unwrap(obj))


def choose_now(src: FdInfo, dst: FdInfo, offered: frozenset[Method]) -> Plan:
    """``_plan.choose`` with what this process knows now (``ZCIO_DISABLE``, refusals); the
    user-space copy is always offered."""
    return choose(
        src,
        dst,
        offered=offered | {Method.USERSPACE},
        disabled=KNOWLEDGE.disabled(),
        refused_pairs=KNOWLEDGE.refused_pairs(),
    )


def plan(src: object, dst: object) -> Plan:
    """Which method :func:`copy` would use to move bytes from ``src`` to ``dst``, and why every
    other method was passed over.

    Probes both (``fstat``, ``fcntl``, ``getsockopt``); moves nothing, awaits nothing. Takes into
    account ``ZCIO_DISABLE`` and what the kernel refused earlier in this process.
    """
    src_info = probe(src)
    offered = FILE_METHODS if src_info.kind is Kind.REGULAR_FILE else STREAM_METHODS
    return choose_now(src_info, probe(dst), offered)
