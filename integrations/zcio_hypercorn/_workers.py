"""What hypercorn runs, with zcio_hypercorn in place: its worker functions (the targets of the
``spawn``-started worker processes) and ``worker_serve`` (what every worker and the in-process
``serve`` call).

hypercorn starts ``--workers N`` processes with multiprocessing's ``spawn`` method, so a change
made in the parent is lost in them; the target function, though, is pickled by name. With
zcio_hypercorn installed the target is one of these functions: unpickling it imports this
module in the worker, and the function installs zcio_hypercorn there before it runs
hypercorn's own worker.
"""

from __future__ import annotations

from multiprocessing.synchronize import Event as EventType
from typing import Any

from hypercorn.asyncio import run as asyncio_run
from hypercorn.config import Config, Sockets

from ._original import original
from ._report import reporting

__all__ = [
    "asyncio_worker",
    "asyncio_worker_serve",
    "trio_worker",
    "trio_worker_serve",
    "uvloop_worker",
]


def _install() -> None:
    from ._install import install

    install()


def asyncio_worker(
    config: Config, sockets: Sockets | None = None, shutdown_event: EventType | None = None
) -> None:
    """hypercorn's asyncio worker, with zcio_hypercorn installed in its process first."""
    _install()
    original(asyncio_run, "asyncio_worker")(config, sockets, shutdown_event)


def uvloop_worker(
    config: Config, sockets: Sockets | None = None, shutdown_event: EventType | None = None
) -> None:
    """hypercorn's uvloop worker, with zcio_hypercorn installed in its process first."""
    _install()
    original(asyncio_run, "uvloop_worker")(config, sockets, shutdown_event)


def trio_worker(
    config: Config, sockets: Sockets | None = None, shutdown_event: EventType | None = None
) -> None:
    """hypercorn's trio worker, with zcio_hypercorn installed in its process first."""
    _install()
    from hypercorn.trio import run as trio_run

    original(trio_run, "trio_worker")(config, sockets, shutdown_event)


async def asyncio_worker_serve(app: Any, config: Config, **kwargs: Any) -> None:
    """hypercorn's asyncio ``worker_serve`` (asyncio and uvloop), with zcio's log lines."""
    async with reporting(config, "asyncio"):
        await original(asyncio_run, "worker_serve")(app, config, **kwargs)


async def trio_worker_serve(app: Any, config: Config, **kwargs: Any) -> None:
    """hypercorn's trio ``worker_serve``, with zcio's log lines."""
    from hypercorn.trio import run as trio_run

    async with reporting(config, "trio"):
        await original(trio_run, "worker_serve")(app, config, **kwargs)
