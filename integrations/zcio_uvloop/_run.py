"""uvloop's module-level helpers, making :class:`~zcio_uvloop.Loop` instead of ``uvloop.Loop``."""

from __future__ import annotations

import asyncio
import sys
import warnings
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from ._loop import Loop

__all__ = ["EventLoopPolicy", "install", "new_event_loop", "run"]

_T = TypeVar("_T")


def new_event_loop() -> Loop:
    """A new :class:`~zcio_uvloop.Loop`, not set as the current loop (as
    ``uvloop.new_event_loop``). Also the loop factory for uvicorn:
    ``uvicorn app:app --loop zcio_uvloop:new_event_loop``."""
    return Loop()


def run(
    main: Coroutine[Any, Any, _T],
    *,
    loop_factory: Callable[[], Loop] = new_event_loop,
    debug: bool | None = None,
    **run_kwargs: Any,
) -> _T:
    """``uvloop.run`` on a :class:`~zcio_uvloop.Loop`: run ``main`` to completion in a new loop
    and close it; exceptions and cancellation behave as in ``asyncio.run``."""
    result: _T = uvloop.run(main, loop_factory=loop_factory, debug=debug, **run_kwargs)
    return result


class EventLoopPolicy(uvloop.EventLoopPolicy):  # type: ignore[misc]
    """``uvloop.EventLoopPolicy`` whose new loops are :class:`~zcio_uvloop.Loop`.

    Deprecated with asyncio's policies (uvloop drops its own on Python 3.16): prefer
    :func:`run` or a loop factory where the caller takes one.
    """

    def _loop_factory(self) -> Loop:
        return new_event_loop()


def install() -> None:
    """Make :class:`EventLoopPolicy` asyncio's policy, so ``asyncio.new_event_loop()`` (and
    ``aiohttp.web.run_app``) make a :class:`~zcio_uvloop.Loop`. As ``uvloop.install``, it warns
    ``DeprecationWarning`` on Python 3.12+, where :func:`run` is the preferred way."""
    if sys.version_info >= (3, 12):
        warnings.warn(
            "zcio_uvloop.install() is deprecated in favor of zcio_uvloop.run() "
            "starting with Python 3.12.",
            DeprecationWarning,
            stacklevel=2,
        )
    asyncio.set_event_loop_policy(EventLoopPolicy())
