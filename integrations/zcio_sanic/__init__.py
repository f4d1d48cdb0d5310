"""Sanic's file responses and static routes, sent with ``sendfile(2)`` by zcio.

Change one import and the body of every file response goes from the page cache to the socket
on plaintext HTTP/1.1, never read into memory::

    from zcio_sanic import file, file_stream

``install(app)`` does the same for the app's ``app.static(...)`` routes and opens their files
beneath the served folder. TLS, HTTP/3, ASGI mode and apps with ``http.lifecycle.send`` signal
handlers keep Sanic's own path (the file read in bounded chunks). Uses only zcio's public names.
"""

from ._response import (
    ZeroCopyFile as ZeroCopyFile,
    ZeroCopyFileStream as ZeroCopyFileStream,
    file as file,
    file_stream as file_stream,
)
from ._static import install as install

__all__ = ["ZeroCopyFile", "ZeroCopyFileStream", "file", "file_stream", "install"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_sanic."):
        _obj.__module__ = "zcio_sanic"
del _name, _obj
