"""uvicorn protocols that implement the ASGI zero-copy extensions, with limits on what one
client may send.

``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol`` (or ``zcio_uvicorn:H11Protocol``)
serves ``http.response.zerocopysend`` and ``http.response.pathsend`` with ``sendfile(2)`` on
plaintext HTTP/1.1, on the default asyncio loop and on uvloop; everything else is uvicorn's own
code path. Request heads and open connections are bounded (:class:`Limits`: 414, 431, 408,
503), by default and through ``ZCIO_UVICORN_*`` variables or ``Protocol.configure(...)``.
Uses only zcio's public API.
"""

from ._limits import Limits as Limits
from ._protocols import (
    REPORT_ENV as REPORT_ENV,
    H11Protocol as H11Protocol,
    HttpToolsProtocol as HttpToolsProtocol,
)

__all__ = ["REPORT_ENV", "H11Protocol", "HttpToolsProtocol", "Limits"]
