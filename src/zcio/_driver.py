"""The one place a method falls back to the next: every transfer, ``tee_stream`` included.

A route (a :class:`~zcio.Plan` for one destination, ``_tee``'s for several) names the
candidate methods in order and words the :class:`~zcio.ZeroCopyUnavailable` raised when
``fallback=False`` forbids the user-space copy; runners move the bytes, one per method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from ._errors import ZeroCopyUnavailable
from ._job import Running
from ._kinds import Method
from ._knowledge import Refusal
from ._plan import Plan, Reason, static_reason
from ._stats import COUNTERS

__all__ = ["PlanRoute", "Refusals", "Route", "Runner", "RunningT", "run"]

RunningT = TypeVar("RunningT", bound=Running)
#: Moves the bytes by one method.
Runner = Callable[[RunningT], Awaitable[None]]
#: Each refused candidate, with the refusal.
Refusals = list[tuple[Method, Refusal]]


class Route(Protocol):
    """The candidates of a transfer, and how to say that none of them is zero-copy."""

    @property
    def candidates(self) -> tuple[Method, ...]: ...

    @property
    def zero_copy(self) -> bool: ...

    def static_reason(self) -> Reason:
        """Why the first candidate is the user-space copy (counted as a fallback)."""
        ...

    def unavailable(self) -> ZeroCopyUnavailable:
        """No zero-copy candidate at all, and ``fallback=False``."""
        ...

    def refused(self, refusals: Refusals) -> ZeroCopyUnavailable:
        """Every zero-copy candidate was refused, and ``fallback=False``."""
        ...


class PlanRoute:
    """The route of a one-destination transfer: its :class:`~zcio.Plan`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.candidates = plan.candidates
        self.zero_copy = plan.zero_copy

    def static_reason(self) -> Reason:
        return static_reason(self.plan)

    def unavailable(self) -> ZeroCopyUnavailable:
        plan = self.plan
        return ZeroCopyUnavailable(
            f"no zero-copy method from a {plan.src} to a {plan.dst}:\n{plan}",
            tuple((str(s.method), s.why) for s in plan.passed_over),
        )

    def refused(self, refusals: Refusals) -> ZeroCopyUnavailable:
        plan = self.plan
        return ZeroCopyUnavailable(
            f"no zero-copy method could move bytes from a {plan.src} to a {plan.dst}",
            tuple((str(method), str(refusal)) for method, refusal in refusals),
        )


async def run(
    route: Route, job: RunningT, runners: Mapping[Method, Runner[RunningT]], fallback: bool
) -> None:
    """Try each candidate of ``route`` in order until one runs to the end.

    A ``Refusal`` (the kernel said no on the first call, or no pipe could be had) moves on to
    the next candidate, after delivering the bytes the refused method had already taken
    (``job.carry``). Anything else propagates, for the caller's ``map_exceptions``.
    Cancellation propagates too, with ``job``'s counts exact.
    """
    if not route.zero_copy:
        if not fallback:
            raise route.unavailable()
        COUNTERS.fallback(route.static_reason())
    refusals: Refusals = []
    for method in route.candidates:
        if job.carry:  # bytes a refused splice had taken: they go first, whatever comes next
            carry, job.carry = job.carry, b""
            await job.deliver(memoryview(carry))
        if method is Method.USERSPACE and not fallback:
            raise route.refused(refusals)
        job.started(method)
        COUNTERS.transfer(method)
        try:
            await runners[method](job)
        except Refusal as refusal:
            COUNTERS.fallback(refusal.reason)
            refusals.append((method, refusal))
            continue
        return
