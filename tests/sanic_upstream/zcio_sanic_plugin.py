"""pytest plugin: Sanic's own file and static tests, run with zcio_sanic in effect.

Loaded before Sanic's test modules are imported, it replaces ``file`` and ``file_stream``
wherever Sanic and its tests look them up (``sanic``, ``sanic.response``, the static mixin's
and the directory handler's module globals) with zcio_sanic's, and makes every ``Sanic`` app
call ``zcio_sanic.install(app)`` when it is created, so ``app.static`` routes serve with them.

Sanic's tests mark their coroutine tests ``@pytest.mark.asyncio`` (upstream runs them with a
plugin this project does not install); they are run here, each on a new event loop.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import os
from typing import Any

import pytest
import sanic
import sanic.handlers.directory
import sanic.mixins.static
import sanic.response
import sanic.response.convenience

import zcio
import zcio_sanic

for _module in (sanic, sanic.response, sanic.mixins.static, sanic.handlers.directory):
    if hasattr(_module, "file"):
        _module.file = zcio_sanic.file  # type: ignore[attr-defined]
    if hasattr(_module, "file_stream"):
        _module.file_stream = zcio_sanic.file_stream  # type: ignore[attr-defined]

_stock_init = sanic.Sanic.__init__


@functools.wraps(_stock_init)
def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _stock_init(self, *args, **kwargs)
    zcio_sanic.install(self)


sanic.Sanic.__init__ = _init  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asyncio: a coroutine test, run on a new event loop")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    arguments = {name: pyfuncitem.funcargs[name] for name in names}
    with asyncio.Runner() as runner:
        runner.run(function(**arguments))
    return True


@pytest.fixture(autouse=True)
def _zcio_sanic_in_effect() -> None:
    # A guard: a test module that imported the names before this plugin would test Sanic's.
    assert sanic.response.file is zcio_sanic.file


def pytest_sessionfinish(session: pytest.Session) -> None:
    # What moved the bytes, for tests/test_sanic_upstream.py to check.
    out = os.environ.get("ZCIO_SANIC_STATS")
    if out:
        sendfile = zcio.stats().methods["sendfile"]
        with open(out, "w") as f:
            json.dump({"transfers": sendfile.transfers, "bytes": sendfile.bytes}, f)
