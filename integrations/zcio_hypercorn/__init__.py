"""hypercorn with the ASGI zero-copy extensions: ``http.response.zerocopysend`` and
``http.response.pathsend`` served with ``sendfile(2)`` on plaintext HTTP/1.1, on hypercorn's
asyncio, uvloop and trio workers.

Run it as hypercorn, with hypercorn's whole command line::

    zcio-hypercorn app:app -k trio --workers 2 --bind 127.0.0.1:8000
    python -m zcio_hypercorn app:app

or, for hypercorn in your own process (``hypercorn.asyncio.serve``, ``hypercorn.trio.serve``,
Quart's ``run_task``), call :func:`install` first. TLS, HTTP/2 and HTTP/3 connections are
hypercorn's own, and offer neither extension (apps then send their bytes themselves).
Uses only zcio's public API.

Importing it with a hypercorn outside the tested range (``zcio_hypercorn.SUPPORTED``) raises
``zcio_hypercorn.UnsupportedHypercorn``, an ``ImportError`` naming the range.
"""

from __future__ import annotations

from ._supported import (
    SUPPORTED as SUPPORTED,
    UnsupportedHypercorn as UnsupportedHypercorn,
    check as _check,
)

_check()

from ._install import (  # noqa: E402  (only once hypercorn is known supported)
    install as install,
    installed as installed,
    uninstall as uninstall,
)
from ._main import main as main  # noqa: E402
from ._report import REPORT_ENV as REPORT_ENV  # noqa: E402

__all__ = [
    "REPORT_ENV",
    "SUPPORTED",
    "UnsupportedHypercorn",
    "install",
    "installed",
    "main",
    "uninstall",
]
