"""Zero-copy file responses for Quart: ``zcio_quart.install(app)`` makes ``send_file``,
``send_from_directory`` and the static folders send their files with
``http.response.zerocopysend`` (or ``pathsend``) where the server offers it, and opens the files
of ``send_from_directory`` beneath their folder.

One line, after the app is made (and after setting ``app.response_class`` or
``app.asgi_http_class``, if the app sets them)::

    app = Quart(__name__)
    zcio_quart.install(app)

Without a server that advertises an extension (stock hypercorn), behind a middleware that needs
the body bytes, or for a body an ``after_request`` replaced, the bytes are Quart's own.
Uses only zcio's public names.
"""

from ._body import FileBody as FileBody
from ._connection import HTTPConnection as HTTPConnection, why_not_zerocopy as why_not_zerocopy
from ._install import install as install

__all__ = ["FileBody", "HTTPConnection", "install", "why_not_zerocopy"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_quart."):
        _obj.__module__ = "zcio_quart"
del _name, _obj
