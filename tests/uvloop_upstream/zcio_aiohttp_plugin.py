"""pytest plugin: aiohttp's own tests, with their "uvloop" loop replaced by zcio_uvloop's.

aiohttp's pytest plugin builds each test's loop from ``uvloop.new_event_loop`` when run with
``--aiohttp-loop=pyloop,uvloop``; pointing its ``uvloop`` name at a shim makes every "uvloop"
case run on a :class:`zcio_uvloop.Loop` while the "pyloop" cases stay on the default loop, so
the two can be compared test by test.

For every test the plugin records its outcome, what ``loop.sendfile`` returned on the loop
(plaintext and TLS transports apart) and the change in ``zcio.stats()``, into the JSON file
named by ``ZCIO_AIOHTTP_REPORT``.

aiohttp's tests run under blockbuster, which allows ``os.sendfile`` on the loop only where
asyncio calls it (its native ``sock_sendfile``). zcio calls it on the loop under the same
conditions (a non-blocking socket; and only for pages already in the page cache, others go to
a worker thread), so its two call sites get the same exemption, added here before aiohttp's
conftest imports ``blockbuster_ctx``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

import zcio
import zcio_uvloop

_ZCIO_SENDFILE_ON_LOOP = [
    ("zcio/_small_send.py", "_sendfile_cached"),
    ("zcio/_file_loops.py", "_sendfile_to_stream"),
]


def _allow_zcio_in_blockbuster() -> None:
    try:
        import blockbuster
    except ImportError:
        return
    original = blockbuster.blockbuster_ctx

    @contextlib.contextmanager
    def blockbuster_ctx(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with original(*args, **kwargs) as bb:
            for filename, function in _ZCIO_SENDFILE_ON_LOOP:
                bb.functions["os.sendfile"].can_block_in(filename, function)
            yield bb

    blockbuster.blockbuster_ctx = blockbuster_ctx


_allow_zcio_in_blockbuster()

_calls: dict[str, int] = {}
_report: dict[str, dict[str, Any]] = {}


class _CountingLoop(zcio_uvloop.Loop):
    async def sendfile(
        self, transport: Any, file: Any, offset: int = 0, count: int | None = None, **kw: Any
    ) -> int:
        try:
            sent = await super().sendfile(transport, file, offset, count, **kw)
        except BaseException:
            _calls["raised"] = _calls.get("raised", 0) + 1
            raise
        tls = transport.get_extra_info("sslcontext") is not None
        key = "tls" if tls else "plain"
        _calls[key] = _calls.get(key, 0) + sent
        return sent


class _Shim:
    """Stands in for the ``uvloop`` module inside aiohttp's pytest plugin."""

    @staticmethod
    def new_event_loop() -> _CountingLoop:
        return _CountingLoop()


def pytest_configure() -> None:
    # Imported here, after aiohttp's conftest registered it, so pytest can still rewrite it.
    import aiohttp.pytest_plugin

    aiohttp.pytest_plugin.uvloop = _Shim  # type: ignore[assignment,attr-defined]


def pytest_report_header() -> str:
    return "zcio: aiohttp's 'uvloop' loop is zcio_uvloop.Loop"


@pytest.fixture(autouse=True)
def _zcio_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    _calls.clear()
    before = zcio.stats()
    yield
    delta = zcio.stats() - before
    _report.setdefault(request.node.nodeid, {}).update(
        returned_plain=_calls.get("plain", 0),
        returned_tls=_calls.get("tls", 0),
        raised=_calls.get("raised", 0),
        zcio_sendfile=delta.bytes("sendfile"),
        zcio_userspace=delta.bytes("userspace"),
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _report.setdefault(report.nodeid, {})
    if report.when == "call" or report.outcome != "passed":
        entry.setdefault("outcome", report.outcome)
        if report.when == "call":
            entry["outcome"] = report.outcome


def pytest_sessionfinish() -> None:
    path = os.environ.get("ZCIO_AIOHTTP_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(_report, f, indent=1)
