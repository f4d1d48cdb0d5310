"""uvicorn protocols that implement the ASGI zero-copy extensions.

``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol`` (or ``zcio_uvicorn:H11Protocol``)
serves ``http.response.zerocopysend`` and ``http.response.pathsend`` with ``sendfile(2)`` on
plaintext HTTP/1.1, on the default asyncio loop and on uvloop; everything else is uvicorn's own
code path. Uses only zcio's public API.
"""

from ._protocols import H11Protocol as H11Protocol, HttpToolsProtocol as HttpToolsProtocol

__all__ = ["H11Protocol", "HttpToolsProtocol"]
