"""What this process has learned about the kernel, plus the ``ZCIO_DISABLE`` switch.

As in Rust's std: ENOSYS or EPERM from a method (no such syscall, or a seccomp filter) turns
it off for the whole process; EINVAL or EOPNOTSUPP turns it off for that pair of fd kinds
only (for regular files: files on that filesystem, see ``_plan.pair_key``); EXDEV only this
transfer; anything else is an ordinary error of that one transfer. Only a refusal on a
transfer's *first* call counts as knowledge: once bytes moved, an error is an error.
"""

from __future__ import annotations

import errno
import os
import threading
import warnings

from ._kinds import Method
from ._plan import PairKey, Reason, pair_key
from ._probe import FdInfo

__all__ = ["KNOWLEDGE", "Knowledge", "Refusal", "disabled_methods"]

ENV = "ZCIO_DISABLE"

_PROCESS_WIDE = frozenset({errno.ENOSYS, errno.EPERM})
_PAIR = frozenset({errno.EINVAL, errno.EOPNOTSUPP})
# Refusals that say nothing lasting: copy_file_range across filesystems, for instance.
_THIS_TRANSFER = frozenset({errno.EXDEV})


class Refusal(Exception):
    """Internal: a method cannot run here after all (the kernel refused its first call, or it
    lacks a resource), before any byte was delivered; the next candidate may run."""

    def __init__(
        self,
        method: Method,
        cause: OSError | None,
        detail: str = "",
        reason: Reason = Reason.KERNEL_REFUSED,
    ) -> None:
        super().__init__(detail or f"{method} refused: {cause}")
        self.method = method
        self.cause = cause
        self.reason = reason


def parse_disable(value: str) -> frozenset[Method]:
    """``"sendfile, splice"`` -> those methods; ``"all"`` -> every zero-copy method."""
    names = {part.strip().lower() for part in value.split(",") if part.strip()}
    if "all" in names:
        return frozenset(m for m in Method if m is not Method.USERSPACE)
    known = {m.value for m in Method if m is not Method.USERSPACE}
    unknown = names - known
    if unknown:
        warnings.warn(
            f"{ENV}: ignoring unknown method(s) {sorted(unknown)}; known: {sorted(known)}",
            RuntimeWarning,
            stacklevel=3,
        )
    return frozenset(Method(n) for n in names & known)


class Knowledge:
    """The process-wide state behind every plan: switched off, unavailable, refused pairs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget what was learned and read ``ZCIO_DISABLE`` again."""
        with self._lock:
            self._env = parse_disable(os.environ.get(ENV, ""))
            self._unavailable: set[Method] = set()
            self._refused: set[PairKey] = set()

    def disabled(self) -> dict[Method, Reason]:
        out = dict.fromkeys(self._unavailable, Reason.UNAVAILABLE)
        out.update(dict.fromkeys(self._env, Reason.DISABLED))
        return out

    def switched_off(self) -> frozenset[Method]:
        """The methods ``ZCIO_DISABLE`` names, as read at the last :meth:`reset`."""
        return self._env

    def refused_pairs(self) -> frozenset[PairKey]:
        return frozenset(self._refused)

    def allows(self, key: PairKey) -> bool:
        """Whether a plan for the pair ``key`` would keep its method: the one-pair shortcut of
        :meth:`disabled` and :meth:`refused_pairs` for a caller that knows the method already."""
        method = key[0]
        return (
            method not in self._env
            and method not in self._unavailable
            and (key not in self._refused)
        )

    def is_refusal(self, method: Method, exc: OSError, src: FdInfo, dst: FdInfo) -> bool:
        """Whether ``exc`` on a first call means "this method cannot work here"; learns from it."""
        code = exc.errno
        with self._lock:
            if code in _PROCESS_WIDE:
                self._unavailable.add(method)
                return True
            if code in _PAIR:
                self._refused.add(pair_key(method, src, dst))
                return True
        return code in _THIS_TRANSFER


KNOWLEDGE = Knowledge()


def disabled_methods() -> frozenset[Method]:
    """The zero-copy methods that ``ZCIO_DISABLE`` turns off in this process.

    ``ZCIO_DISABLE`` is a comma-separated list of method names (``sendfile``, ``splice``,
    ``tee``, ``copy_file_range``) or ``all``; it is read once, when zcio is imported, and
    unknown names are ignored with a ``RuntimeWarning`` then. This returns what every transfer
    honours, so a tool can report it without parsing the variable again. Methods the kernel
    refused are not included (see :func:`zcio.plan` for those). Nothing is awaited, so there
    is nothing to cancel, and it raises nothing.
    """
    return KNOWLEDGE.switched_off()
