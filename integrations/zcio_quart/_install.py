"""``install(app)``: Quart's file responses, zero-copy where the server allows."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from quart import Quart
from quart.asgi import ASGIHTTPConnection
from quart.wrappers.response import FileBody as QuartFileBody, Response

from ._body import FileBody
from ._connection import HTTPConnection

__all__ = ["install"]

_App = TypeVar("_App", bound=Quart)


def install(app: _App) -> _App:
    """Make ``app``'s ``send_file``, ``send_from_directory`` and static folders (its own and its
    blueprints') zero-copy where the server offers it, and open the files of
    ``send_from_directory`` beneath their folder. Returns ``app``; calling it again is harmless.

    Two of the app's classes are replaced by subclasses, and nothing else (no module of Quart
    is patched; other apps in the process are untouched):

    - ``app.response_class``: the same class with ``file_body_class`` set to
      :class:`zcio_quart.FileBody`, when it is Quart's ``FileBody`` (a class of your own is
      kept, and its bodies are sent by Quart's path);
    - ``app.asgi_http_class``: :class:`zcio_quart.HTTPConnection` (or a subclass of yours
      with it mixed in, unless yours overrides ``_send_response``: then yours is kept).

    Set ``app.response_class`` and ``app.asgi_http_class`` before calling it, if the app sets
    them. Never raises for a Quart app; does no I/O.
    """
    connection = app.asgi_http_class
    if issubclass(connection, ASGIHTTPConnection) and (
        connection._send_response is ASGIHTTPConnection._send_response
        or issubclass(connection, HTTPConnection)
    ):
        app.asgi_http_class = _with_zerocopy(connection)
    if app.response_class.file_body_class is QuartFileBody:
        app.response_class = _with_file_body(app.response_class)
    return app


def _subclass(base: type, mixin: type | None, attributes: dict[str, Any]) -> Any:
    """A subclass of ``base`` (with ``mixin`` first), under ``base``'s name."""
    bases = (base,) if mixin is None else (mixin, base)
    namespace = {"__module__": base.__module__, "__qualname__": base.__qualname__, **attributes}
    return type(base.__name__, bases, namespace)


# The subclasses made, per class of the app's: two apps of one class share them.
_MADE: dict[type, Any] = {}


def _with_zerocopy(connection: type[ASGIHTTPConnection]) -> type[HTTPConnection]:
    if issubclass(connection, HTTPConnection):
        return connection
    if connection is ASGIHTTPConnection:
        return HTTPConnection
    if connection not in _MADE:
        _MADE[connection] = _subclass(connection, HTTPConnection, {})
    return cast(type[HTTPConnection], _MADE[connection])


def _with_file_body(response: type[Response]) -> type[Response]:
    if response not in _MADE:
        _MADE[response] = _subclass(response, None, {"file_body_class": FileBody})
    return cast(type[Response], _MADE[response])
