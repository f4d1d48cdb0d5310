"""Tornado's ``StaticFileHandler`` (and every handler built on it: Jupyter's ``/files/``,
``/static/`` and kernelspec resources, Bokeh's) sending files with ``sendfile``.

One call, before the server starts::

    import zcio_tornado

    zcio_tornado.install()

From then on ``tornado.web.StaticFileHandler.get``, which Jupyter's and Bokeh's handlers call
explicitly, sends the body of every plaintext HTTP/1 response with :func:`zcio.send_file`:
whole files and ranges, never blocking the event loop (pages not in the page cache go from a
worker thread). Tornado still decides everything else: paths, headers, ETags, 304, 416, HEAD.
TLS, gzip (``compress_response``) and connections that are not real sockets keep Tornado's
writes, byte for byte, with the file read in a worker thread; a handler that overrides
``get_content`` keeps Tornado's ``get`` as it is. :func:`uninstall` puts Tornado's back.

:class:`StaticFileHandler` is the same without patching, for ``static_handler_class=`` or a
route. For Jupyter, enable the server extension :mod:`zcio_tornado.jupyter`.
"""

from __future__ import annotations

import tornado.web

from ._static import STOCK_GET, StaticFileHandler as StaticFileHandler, counts, get, reset_counts

__all__ = ["StaticFileHandler", "counts", "install", "installed", "reset_counts", "uninstall"]


def install() -> None:
    """Make ``tornado.web.StaticFileHandler.get`` zcio's, for the class and every subclass
    that does not define its own ``get`` (and those that call it explicitly). Idempotent;
    affects handlers from their next request on."""
    tornado.web.StaticFileHandler.get = get  # type: ignore[method-assign]


def uninstall() -> None:
    """Put Tornado's own ``StaticFileHandler.get`` back. Idempotent."""
    tornado.web.StaticFileHandler.get = STOCK_GET  # type: ignore[method-assign,assignment]


def installed() -> bool:
    """Whether :func:`install` is in effect."""
    return tornado.web.StaticFileHandler.get is get


counts.__module__ = reset_counts.__module__ = StaticFileHandler.__module__ = "zcio_tornado"
