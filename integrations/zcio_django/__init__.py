"""Django file responses on ASGI, sent by the server instead of read into memory.

Change one line of a project's ``asgi.py``::

    from zcio_django import get_asgi_application

    application = get_asgi_application()

A ``FileResponse`` whose body is a real file (``django.views.static.serve``, the static-files
handler, ``FileResponse(open(path, "rb"))`` in a view) is then sent with
``http.response.zerocopysend`` where the server advertises it (``zcio_uvicorn``), else with
``http.response.pathsend`` where that is exact (granian), else in bounded chunks read off the
event loop (stock uvicorn, daphne, hypercorn). Django's own handler reads the whole file into
memory first. Every other response is Django's own code path. The server does the sending:
of zcio, only the extensions' names (``zcio.asgi``) are used.
"""

from ._files import FileBody as FileBody, Way as Way, choose as choose, file_body as file_body
from ._handler import (
    ASGIHandler as ASGIHandler,
    ASGIStaticFilesHandler as ASGIStaticFilesHandler,
    FileSendingMixin as FileSendingMixin,
    get_asgi_application as get_asgi_application,
)

__all__ = [
    "ASGIHandler",
    "ASGIStaticFilesHandler",
    "FileBody",
    "FileSendingMixin",
    "Way",
    "choose",
    "file_body",
    "get_asgi_application",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_django."):
        _obj.__module__ = "zcio_django"
del _name, _obj
