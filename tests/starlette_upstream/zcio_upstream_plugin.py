"""A pytest plugin for a run of Starlette's own test suite against zcio_starlette.

Loaded with ``-p zcio_upstream_plugin`` into a separate pytest process whose rootdir is an
extracted Starlette sdist (see ``test_starlette_upstream.py``). It is imported before any test
module, so the upstream modules' ``from starlette.responses import FileResponse`` and
``from starlette.staticfiles import StaticFiles`` already find zcio_starlette's classes; the
test files themselves are not touched. ``ZCIO_UPSTREAM_MODE`` says what to run:

- ``stock``: nothing replaced; the baseline, to tell our regressions from tests that fail here
  anyway (as root, Starlette's permission tests do).
- ``ours``: zcio_starlette's ``FileResponse`` and ``StaticFiles`` in place of Starlette's, with
  servers as the tests make them (Starlette's TestClient advertises no file extension).
- ``zerocopysend``: the same, and Starlette's TestClient behaves as a server implementing
  ``http.response.zerocopysend``: it advertises the extension and turns each zerocopysend
  message into the body message carrying the same bytes (read with ``os.pread``, as
  ``sendfile`` would), so that every upstream assertion on a TestClient response checks bytes
  that went out by zerocopysend.

``ZCIO_UPSTREAM_REPORT`` names a JSON file this plugin writes at the end: for every test, its
outcome and the number of zerocopysend messages it caused.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import starlette.responses
import starlette.staticfiles
import starlette.testclient
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import zcio._file_cache
import zcio_starlette

MODE = os.environ.get("ZCIO_UPSTREAM_MODE", "stock")
if MODE == "zerocopysend":
    # Every file byte through zerocopysend: the open-file cache keeps no small file in memory.
    zcio._file_cache.DEFAULT_OPTIONS["max_body"] = 0
ZEROCOPYSEND = "http.response.zerocopysend"
_used = [0]  # zerocopysend messages served during the current test


def _read(message: Message) -> bytes:
    file = message["file"]
    fd = file if isinstance(file, int) else file.fileno()
    offset = message.get("offset")
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    count = message.get("count")
    if count is None:
        count = max(os.fstat(fd).st_size - offset, 0)
    out = bytearray()
    while len(out) < count:
        chunk = os.pread(fd, count - len(out), offset + len(out))
        if not chunk:
            break  # a short file: the client sees a short body, as from a real server
        out += chunk
    return bytes(out)


def serve_zerocopysend(app: ASGIApp) -> ASGIApp:
    """``app`` as a server implementing ``http.response.zerocopysend`` would call it."""

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        scope = {**scope, "extensions": {**(scope.get("extensions") or {}), ZEROCOPYSEND: {}}}

        async def zerocopy_send(message: Message) -> None:
            if message["type"] == ZEROCOPYSEND:
                _used[0] += 1
                message = {
                    "type": "http.response.body",
                    "body": _read(message),
                    "more_body": message.get("more_body", False),
                }
            await send(message)

        await app(scope, receive, zerocopy_send)

    return server


def _install() -> None:
    if MODE == "stock":
        return
    if MODE not in ("ours", "zerocopysend"):
        raise pytest.UsageError(f"ZCIO_UPSTREAM_MODE={MODE!r}: stock, ours or zerocopysend")
    starlette.responses.FileResponse = zcio_starlette.FileResponse  # type: ignore[misc]
    starlette.staticfiles.StaticFiles = zcio_starlette.StaticFiles  # type: ignore[misc]
    if MODE == "zerocopysend":
        transport = starlette.testclient._TestClientTransport
        original_init = transport.__init__

        def init(self: Any, app: ASGIApp, *args: Any, **kwargs: Any) -> None:
            original_init(self, serve_zerocopysend(app), *args, **kwargs)

        transport.__init__ = init  # type: ignore[method-assign]


_install()


_results: dict[str, dict[str, Any]] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    _used[0] = 0


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    result = _results.setdefault(report.nodeid, {"outcome": "passed", "zerocopysend": 0})
    if report.failed:
        result["outcome"] = "failed" if report.when == "call" else "error"
    elif report.skipped and result["outcome"] == "passed":
        result["outcome"] = "skipped"
    if report.when == "call":
        result["zerocopysend"] = _used[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("ZCIO_UPSTREAM_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(_results, out, indent=1, sort_keys=True)
