"""Every async test runs on asyncio, asyncio+uvloop and trio; every test is checked for fd leaks.

Async test modules say ``pytestmark = pytest.mark.anyio``; the ``anyio_backend`` fixture here
then runs each of their tests once per backend.

``mode`` parametrizes transfer tests over the native path and a forced fallback
(``ZCIO_DISABLE=all``), as aiohttp runs its sendfile tests twice.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import pytest

import zcio.asgi
from zcio import default_pipe_pool
from zcio._knowledge import ENV, KNOWLEDGE

BACKENDS = [
    pytest.param(("asyncio", {}), id="asyncio"),
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param(("trio", {}), id="trio"),
]


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    # Function scope on purpose: each test gets a fresh event loop, closed before the fd check.
    return request.param


@pytest.fixture(autouse=True)
def _fresh_knowledge() -> Iterator[None]:
    """Each test starts with what the environment says, not what earlier tests taught zcio."""
    KNOWLEDGE.reset()
    yield
    KNOWLEDGE.reset()


@pytest.fixture(params=["native", "fallback"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``native``: zcio may use every method. ``fallback``: ZCIO_DISABLE=all."""
    if request.param == "fallback":
        monkeypatch.setenv(ENV, "all")
    else:
        monkeypatch.delenv(ENV, raising=False)
    KNOWLEDGE.reset()
    return str(request.param)


def _warm_up_process_wide_fds() -> None:
    """uvloop (libuv) opens a process-wide pipe with its first loop and keeps it; open it now so
    the leak check below does not blame the first test that runs on uvloop."""
    import asyncio

    import uvloop

    async def nothing() -> None:
        await asyncio.sleep(0)

    uvloop.run(nothing())


_warm_up_process_wide_fds()


def open_fds() -> dict[int, str]:
    out = {}
    for name in os.listdir("/proc/self/fd"):
        with suppress(OSError):  # the fd listdir itself used is already closed
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


@pytest.fixture(autouse=True)
def _no_fd_leaks() -> Iterator[None]:
    """Every test, not only every module: a leak is reported next to the test that made it.

    Idle pipes in zcio's pool are not leaks (the pool owns them); they are closed before
    counting, and no pipe may still be lent out.
    """
    pool = default_pipe_pool()
    pool.clear()
    zcio.asgi.clear_file_caches()  # cached fds are the caches' own, as idle pipes are the pool's
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    assert pool.busy == 0, "a transfer kept a pipe from the pool"
    pool.clear()
    zcio.asgi.clear_file_caches()
    leaked = {fd: what for fd, what in open_fds().items() if before.get(fd) != what}
    assert not leaked, f"file descriptors left open by this test: {leaked}"
