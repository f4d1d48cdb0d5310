"""A pytest plugin for jupyter_server's own tests: every server they start has the
``zcio_tornado.jupyter`` extension enabled (``ServerApp.jpserver_extensions``), each test
checks that it was loaded, and the session ends with zcio's counters on one line starting
with ``ZCIO_TORNADO`` (JSON).

Loaded with ``-p jupyter_server.pytest_plugin -p zcio_jupyter_plugin`` so that its
``jp_server_config`` comes after (and so overrides) pytest_jupyter's.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import zcio
import zcio_tornado

EXTENSION = "zcio_tornado.jupyter"


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    return {"ServerApp": {"jpserver_extensions": {EXTENSION: True}}}


@pytest.fixture(autouse=True)
def _zcio_extension_loaded(request: pytest.FixtureRequest) -> None:
    if "jp_serverapp" in request.fixturenames:
        app = request.getfixturevalue("jp_serverapp")
        assert EXTENSION in app.extension_manager.extensions, "zcio_tornado.jupyter not loaded"
        assert zcio_tornado.installed()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    stats = zcio.stats()
    said = {
        "installed": zcio_tornado.installed(),
        "counts": zcio_tornado.counts(),
        "bytes": {name: row.bytes for name, row in stats.methods.items() if row.bytes},
    }
    terminalreporter.write_line("ZCIO_TORNADO " + json.dumps(said))
