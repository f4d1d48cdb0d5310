"""Process-wide counters of which method moved how many bytes, always on.

Updating a counter is two integer additions on the task that made the system call; reading
them takes a snapshot. Tests use the snapshots to prove which method moved the bytes.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Self

from ._kinds import Method
from ._plan import Reason

__all__ = ["MethodStats", "Stats", "stats"]


@dataclass(frozen=True, slots=True)
class MethodStats:
    """Counts for one method.

    ``transfers`` that ran it, ``calls`` that moved bytes (system calls, or write rounds for
    the user-space copy), ``bytes`` moved, and how many of the calls were ``offloaded`` to a
    worker thread because the file's pages were not cached (or the destination is a file).
    """

    transfers: int = 0
    calls: int = 0
    bytes: int = 0
    offloaded: int = 0

    def __sub__(self, other: MethodStats) -> MethodStats:
        return MethodStats(
            self.transfers - other.transfers,
            self.calls - other.calls,
            self.bytes - other.bytes,
            self.offloaded - other.offloaded,
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """A snapshot of :func:`zcio.stats`. Subtract two snapshots to get what happened between.

    A snapshot's ``methods`` has a row for every :class:`~zcio.Method`, zeros included, from
    the first call on; a difference keeps only the rows that changed, and ``fallbacks`` only
    the reasons that occurred. :meth:`bytes` and :meth:`calls` take any method name.
    """

    methods: MappingProxyType[str, MethodStats] = field(
        default_factory=lambda: MappingProxyType({})
    )
    fallbacks: MappingProxyType[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def bytes(self, method: str | Method) -> int:
        """Bytes moved by ``method`` (0 if it never ran)."""
        return self.methods.get(str(method), MethodStats()).bytes

    def calls(self, method: str | Method) -> int:
        """System calls (or user-space write rounds) made by ``method``."""
        return self.methods.get(str(method), MethodStats()).calls

    def __sub__(self, other: Self) -> Stats:
        names = self.methods.keys() | other.methods.keys()
        methods = {
            n: self.methods.get(n, MethodStats()) - other.methods.get(n, MethodStats())
            for n in sorted(names)
        }
        fallbacks = Counter(self.fallbacks)
        fallbacks.subtract(other.fallbacks)
        return Stats(
            MappingProxyType({n: m for n, m in methods.items() if m != MethodStats()}),
            MappingProxyType({r: c for r, c in sorted(fallbacks.items()) if c}),
        )

    def summary(self) -> str:
        """One line for a log: the bytes each method moved (those that moved any, by name),
        and the fallbacks by reason, if any. What ``zcio serve`` and ``zcio_uvicorn`` log when
        they stop: ``bytes moved: sendfile 1,234 B; fallbacks: not_cached x2`` (``bytes
        moved: none`` when nothing moved). Meant for a difference of two snapshots. Pure
        formatting: no I/O."""
        parts = [f"{name} {m.bytes:,} B" for name, m in sorted(self.methods.items()) if m.bytes]
        text = "bytes moved: " + (", ".join(parts) if parts else "none")
        if self.fallbacks:
            reasons = ", ".join(f"{r} x{c}" for r, c in sorted(self.fallbacks.items()))
            text += f"; fallbacks: {reasons}"
        return text

    def prometheus(self, prefix: str = "zcio") -> str:
        """This snapshot in the Prometheus text exposition format (version 0.0.4).

        Four counters per method (``{prefix}_transfers_total``, ``_calls_total``,
        ``_bytes_total``, ``_offloaded_calls_total``, labelled ``method``) and one per fallback
        reason (``{prefix}_fallbacks_total``, labelled ``reason``), every method and reason
        listed, zeros included, so a dashboard sees each series from the first scrape. Pure
        formatting: no I/O, a few microseconds. The counters are per process: behind
        ``--workers N`` each scrape answers for the worker that served it.
        """
        lines: list[str] = []
        for field_name, metric, help_text in _METRICS:
            name = f"{prefix}_{metric}"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            for method in Method:
                row = self.methods.get(str(method), MethodStats())
                lines.append(f'{name}{{method="{method}"}} {getattr(row, field_name)}')
        name = f"{prefix}_fallbacks_total"
        lines += [
            f"# HELP {name} Transfers that did not use the method their pair prefers, by reason.",
            f"# TYPE {name} counter",
        ]
        every = [r.name.lower() for r in Reason if r is not Reason.NOT_OFFERED]  # never counted
        reasons = dict.fromkeys(every, 0) | dict(self.fallbacks)
        lines += [f'{name}{{reason="{r}"}} {c}' for r, c in reasons.items()]
        return "\n".join(lines) + "\n"


#: (MethodStats field, metric name, help) for :meth:`Stats.prometheus`.
_METRICS = (
    ("transfers", "transfers_total", "Transfers that ran the method."),
    ("calls", "calls_total", "Calls that moved bytes (system calls; write rounds in user space)."),
    ("bytes", "bytes_total", "Bytes moved by the method."),
    ("offloaded", "offloaded_calls_total", "Calls made in a worker thread."),
)


class _Counters:
    """The live counters. One lock guards writers from other threads' event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._methods: dict[str, list[int]] = {str(m): [0, 0, 0, 0] for m in Method}
        self._fallbacks: Counter[str] = Counter()

    def transfer(self, method: Method) -> None:
        with self._lock:
            self._methods[method][0] += 1

    def moved(self, method: Method, nbytes: int, *, offloaded: bool = False) -> None:
        with self._lock:
            row = self._methods[method]
            row[1] += 1
            row[2] += nbytes
            row[3] += offloaded

    def moved_whole(self, method: Method, nbytes: int) -> None:
        """One transfer done by one call: :meth:`transfer` and :meth:`moved` at once."""
        with self._lock:
            row = self._methods[method]
            row[0] += 1
            row[1] += 1
            row[2] += nbytes

    def fallback(self, reason: Reason) -> None:
        with self._lock:
            self._fallbacks[reason.name.lower()] += 1

    def snapshot(self) -> Stats:
        with self._lock:
            methods = {n: MethodStats(*row) for n, row in self._methods.items()}
            fallbacks = dict(self._fallbacks)
        return Stats(MappingProxyType(methods), MappingProxyType(fallbacks))


COUNTERS = _Counters()


def stats() -> Stats:
    """A snapshot of what zcio moved in this process, per method, and why it fell back.

    ``stats().methods["sendfile"].bytes`` is how many bytes ``sendfile(2)`` moved (every
    method has its row, zeros included, from the start);
    ``stats().fallbacks`` counts, by reason, the transfers that did not use the first method
    their plan preferred. Snapshots subtract: ``after - before``.
    """
    return COUNTERS.snapshot()
