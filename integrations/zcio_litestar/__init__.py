"""Zero-copy file responses for Litestar 2.x: ``File`` and the static files router send their
bodies with ``http.response.zerocopysend`` (or ``pathsend``) where the server offers it.

Change one import and an existing app is zero-copy wherever its server allows::

    from zcio_litestar import File, create_static_files_router

The classes are subclasses of Litestar's, with the same constructors and the same observable
behaviour; without a server that advertises an extension, on a file system other than the
local one, or behind a middleware that needs the body bytes, they are Litestar's own code path.
Uses only zcio's public names.
"""

from ._middleware import NoZeroCopyMiddleware as NoZeroCopyMiddleware
from ._response import (
    ASGIFileResponse as ASGIFileResponse,
    File as File,
    why_not_zerocopy as why_not_zerocopy,
)
from ._static import (
    StaticFiles as StaticFiles,
    create_static_files_router as create_static_files_router,
)

__all__ = [
    "ASGIFileResponse",
    "File",
    "NoZeroCopyMiddleware",
    "StaticFiles",
    "create_static_files_router",
    "why_not_zerocopy",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_litestar."):
        _obj.__module__ = "zcio_litestar"
del _name, _obj
