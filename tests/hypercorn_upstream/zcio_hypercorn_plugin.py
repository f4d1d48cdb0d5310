"""pytest plugin: hypercorn's own tests, run with zcio_hypercorn installed.

``zcio_hypercorn.install()`` runs when pytest configures itself, before any test module is
imported, so the names hypercorn's tests import (``hypercorn.protocol.h11.H11Protocol``,
``hypercorn.asyncio.tcp_server.TCPServer``, ``hypercorn.trio.tcp_server.TCPServer``) are
zcio_hypercorn's classes, as are the ones hypercorn looks up when it serves.

The tests that build connections from fake readers and writers or fake send functions get
hypercorn's behaviour exactly: zcio_hypercorn offers the file extensions only on a real
plaintext socket it can send files to, so their scopes' ``extensions`` stay ``{}``.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    import zcio_hypercorn

    zcio_hypercorn.install()
    assert zcio_hypercorn.installed()


def pytest_report_header(config: pytest.Config) -> str:
    import zcio_hypercorn

    return f"zcio_hypercorn installed: {zcio_hypercorn.installed()}"
