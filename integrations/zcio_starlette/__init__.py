"""Zero-copy file responses for Starlette: ``http.response.zerocopysend`` for whole files,
single ranges and every part of multipart ranges.

Change the import, and run the app on a server that advertises the extension
(``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol``)::

    from zcio_starlette import FileResponse, StaticFiles

``ZcioStats`` is an endpoint showing zcio's counters (Prometheus text), and whether zero-copy
is on for its route.

The classes are subclasses of Starlette's, with the same constructors and the same observable
behaviour; without a server that advertises the extension they are Starlette's own code path.
The server does the sending; the responses use zcio's public names only (``zcio.asgi`` to
open files and to tell whether a file message can reach the server, ``zcio.Folder`` for
``StaticFiles``).
"""

from ._middleware import NoZeroCopyMiddleware as NoZeroCopyMiddleware
from ._responses import FileResponse as FileResponse
from ._sendpath import why_not_zerocopy as why_not_zerocopy
from ._staticfiles import StaticFiles as StaticFiles
from ._stats import ZcioStats as ZcioStats

__all__ = ["FileResponse", "NoZeroCopyMiddleware", "StaticFiles", "ZcioStats", "why_not_zerocopy"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_starlette."):
        _obj.__module__ = "zcio_starlette"
del _name, _obj
