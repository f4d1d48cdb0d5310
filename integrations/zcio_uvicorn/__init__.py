"""uvicorn protocols that implement the ASGI zero-copy extensions, with limits on what one
client may send.

``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol`` (or ``zcio_uvicorn:H11Protocol``)
serves ``http.response.zerocopysend`` and ``http.response.pathsend`` with ``sendfile(2)`` on
plaintext HTTP/1.1, on the default asyncio loop and on uvloop; everything else is uvicorn's own
code path. Request heads and open connections are bounded (:class:`Limits`: 414, 431, 408,
503), by default and through ``ZCIO_UVICORN_*`` variables or ``Protocol.configure(...)``.
Uses only zcio's public API.

Importing it with a uvicorn outside the tested range (``zcio_uvicorn.SUPPORTED``, the same as
the ``zcio[uvicorn]`` extra's requirement) raises ``zcio_uvicorn.UnsupportedUvicorn``, an
``ImportError`` naming the range: the classes lean on uvicorn's internals, and an untested
uvicorn could make them send a wrong response.
"""

import uvicorn as _uvicorn

from ._supported import (
    SUPPORTED as SUPPORTED,
    UnsupportedUvicorn as UnsupportedUvicorn,
    check as _check,
)

_check(_uvicorn.__version__)

from ._limits import Limits as Limits  # noqa: E402  (only once uvicorn is known supported)
from ._protocols import (  # noqa: E402
    REPORT_ENV as REPORT_ENV,
    H11Protocol as H11Protocol,
    HttpToolsProtocol as HttpToolsProtocol,
)

__all__ = [
    "REPORT_ENV",
    "SUPPORTED",
    "H11Protocol",
    "HttpToolsProtocol",
    "Limits",
    "UnsupportedUvicorn",
]
