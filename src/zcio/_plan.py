"""(source, destination, what the process has learned) -> which method moves the bytes, and why.

Everything that decides a method lives here, as a pure function over probed facts: no system
call, no awaiting. The table is short enough to hold in one's head:

=================  ==========================================  =======================
method             source                                      destination
=================  ==========================================  =======================
copy_file_range    regular file                                regular file
sendfile           regular file                                socket, pipe, chardev,
                                                               regular file
splice             regular file, pipe, stream socket, chardev  pipe, stream socket,
                                                               chardev, regular file
userspace          anything readable                           anything writable
=================  ==========================================  =======================

A method is passed over, with a :class:`Reason`, when a side does not support it, when TLS runs
in user space, when ``ZCIO_DISABLE`` names it, when the kernel has refused it before (for the
whole process on ENOSYS/EPERM, for this pair of kinds on EINVAL), or when the operation does
not offer it. The transfer tries the candidates in order; the user-space copy is always last.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from ._kinds import Kind, Method
from ._probe import FdInfo

__all__ = ["ORDER", "Plan", "Reason", "Skipped", "choose", "pair_key", "static_reason"]

#: Preference order: the most specialised method first, the user-space copy last.
ORDER: tuple[Method, ...] = (
    Method.COPY_FILE_RANGE,
    Method.SENDFILE,
    Method.SPLICE,
    Method.USERSPACE,
)


#: What the kernel's refusals are remembered by: the method and both sides' kinds, where a
#: regular file's kind includes its filesystem (``st_dev``), because a refusal there is a
#: property of the filesystem (procfs, some FUSE or shared folders), not of every file.
PairKey = tuple[Method, Kind, int, Kind, int]


def pair_key(method: Method, src: FdInfo, dst: FdInfo) -> PairKey:
    def dev(info: FdInfo) -> int:
        return info.identity[0] if info.kind is Kind.REGULAR_FILE else 0

    return (method, src.kind, dev(src), dst.kind, dev(dst))


class Reason(StrEnum):
    """Why a method was passed over. The names are the keys of ``stats().fallbacks``."""

    NOT_SUPPORTED = "not supported for this pair of kinds"
    USER_SPACE_TLS = "TLS runs in user space, so every byte must pass through Python"
    APPEND = "the destination is O_APPEND, which the kernel refuses for zero-copy writes"
    DISABLED = "turned off by ZCIO_DISABLE"
    UNAVAILABLE = "unavailable in this process (the kernel said ENOSYS or EPERM)"
    REFUSED_FOR_PAIR = "refused by the kernel for this pair of kinds (and filesystem) before"
    NOT_OFFERED = "not used by this operation"
    KERNEL_REFUSED = "the kernel refused the first call"
    NO_PIPE = "no pipe to be had: the pipe pool was at its limit, or the process out of fds"


class Skipped(NamedTuple):
    """One method a plan passed over."""

    method: Method
    reason: Reason
    why: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What :func:`zcio.plan` decided for a pair of endpoints.

    ``method`` is the first choice; ``candidates`` is every method the transfer may try, in
    order (it moves to the next one only when the kernel refuses a first call, before any byte
    moved); ``passed_over`` explains every method not among the candidates.
    """

    src: Kind
    dst: Kind
    candidates: tuple[Method, ...]
    passed_over: tuple[Skipped, ...]

    @property
    def method(self) -> Method:
        return self.candidates[0]

    @property
    def zero_copy(self) -> bool:
        return self.method is not Method.USERSPACE

    def reason_against(self, method: Method) -> Skipped | None:
        """Why ``method`` was passed over, or None if it is a candidate."""
        return next((s for s in self.passed_over if s.method is method), None)

    def __str__(self) -> str:
        lines = [f"{self.src} -> {self.dst}: {self.method}"]
        lines += [f"  then, if the kernel refuses: {m}" for m in self.candidates[1:]]
        lines += [f"  not {s.method}: {s.why}" for s in self.passed_over]
        return "\n".join(lines)


def choose(
    src: FdInfo,
    dst: FdInfo,
    *,
    offered: Collection[Method] = ORDER,
    disabled: Mapping[Method, Reason] | None = None,
    refused_pairs: Collection[PairKey] = (),
) -> Plan:
    """Decide how to move bytes from ``src`` to ``dst``. Pure: no I/O.

    ``disabled`` maps methods turned off for the whole process to the reason
    (:attr:`Reason.DISABLED` or :attr:`Reason.UNAVAILABLE`); ``refused_pairs`` holds the
    :func:`pair_key` of what the kernel refused before. Raises ``ValueError`` when no
    method at all can work: ``src`` is not readable or ``dst`` not writable.
    """
    if not src.sources:
        raise ValueError(f"cannot read from {src}: it is not open for reading")
    if not dst.destinations:
        raise ValueError(f"cannot write to {dst}: it is not open for writing")
    disabled = disabled or {}
    candidates: list[Method] = []
    skipped: list[Skipped] = []
    for method in ORDER:
        reason = _against(method, src, dst, offered, disabled, refused_pairs)
        if reason is None:
            candidates.append(method)
        else:
            skipped.append(reason)
    return Plan(src.kind, dst.kind, tuple(candidates), tuple(skipped))


def _against(
    method: Method,
    src: FdInfo,
    dst: FdInfo,
    offered: Collection[Method],
    disabled: Mapping[Method, Reason],
    refused_pairs: Collection[PairKey],
) -> Skipped | None:
    if method is Method.USERSPACE:
        return None  # always possible once both sides are open the right way
    for side, info, methods in (
        ("source", src, src.sources),
        ("destination", dst, dst.destinations),
    ):
        if info.kind is Kind.TLS:
            why = f"the {side} runs TLS in user space: every byte must be encrypted in Python"
            return Skipped(method, Reason.USER_SPACE_TLS, why)
        if side == "destination" and info.append:
            return Skipped(method, Reason.APPEND, str(Reason.APPEND))
        if method not in methods:
            return Skipped(
                method, Reason.NOT_SUPPORTED, f"a {info.kind} cannot be a {method} {side}"
            )
    if method is Method.COPY_FILE_RANGE and not (
        src.kind is Kind.REGULAR_FILE and dst.kind is Kind.REGULAR_FILE
    ):
        return Skipped(
            method, Reason.NOT_SUPPORTED, "copy_file_range needs regular files on both sides"
        )
    # The ``why`` texts follow "not METHOD: " wherever they are shown: they do not repeat it.
    if method not in offered:
        return Skipped(method, Reason.NOT_OFFERED, _not_offered(method, src, offered))
    if method in disabled:
        reason = disabled[method]
        return Skipped(method, reason, str(reason))
    if pair_key(method, src, dst) in refused_pairs:
        return Skipped(method, Reason.REFUSED_FOR_PAIR, str(Reason.REFUSED_FOR_PAIR))
    return None


def _not_offered(method: Method, src: FdInfo, offered: Collection[Method]) -> str:
    if method is Method.SPLICE and src.kind is Kind.REGULAR_FILE and Method.SENDFILE in offered:
        return "from a regular file, sendfile moves the same bytes without a pipe"
    return str(Reason.NOT_OFFERED)


def static_reason(plan: Plan) -> Reason:
    """Why a plan that starts with the user-space copy could not do better."""
    reasons = [s.reason for s in plan.passed_over if s.reason is not Reason.NOT_OFFERED]
    interesting = [r for r in reasons if r is not Reason.NOT_SUPPORTED]
    return (interesting or reasons or [Reason.NOT_SUPPORTED])[0]
