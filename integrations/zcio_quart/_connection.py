"""``HTTPConnection``: Quart's ASGI HTTP connection, sending a file body as one message."""

from __future__ import annotations

import os
from typing import Any

from quart.asgi import ASGIHTTPConnection
from quart.utils import encode_headers
from quart.wrappers.response import Response
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response as WerkzeugResponse

from zcio.asgi import PATHSEND, ZEROCOPYSEND

from ._body import FileBody
from ._chain import why_not

__all__ = ["HTTPConnection", "why_not_zerocopy"]

HEAD = "head"  # the start and an empty body: what every server sends for a HEAD


def why_not_zerocopy(scope: Any, send: Any) -> str | None:
    """Why a file body sent with ``scope`` through ``send`` must not go by
    ``http.response.zerocopysend``; ``None`` when it may: the scope is HTTP, the server
    advertises the extension, and no ASGI middleware known to need the body bytes (Starlette's
    and asgi-gzip's GZip, Starlette's BaseHTTPMiddleware) wraps ``send``. Never raises."""
    return why_not(scope, send, ZEROCOPYSEND)


class HTTPConnection(ASGIHTTPConnection):
    """Quart's ``ASGIHTTPConnection``, which sends the body of a ``send_file`` or
    ``send_from_directory`` response (a :class:`zcio_quart.FileBody`) in one message the server
    moves with ``sendfile``, when the server offers one; everything else is Quart's own.

    For a response whose body is still the ``FileBody`` ``send_file`` made (an
    ``after_request`` or ``make_conditional`` that replaced it leaves Quart's path), with a
    status that carries a body (not 1xx, 204 or 304), a ``Content-Length`` equal to the bytes
    Quart would send (the whole file, or the single range Quart serves), and at least one byte:

    - when the server advertises ``http.response.zerocopysend`` and no middleware that needs the
      body wraps ``send`` (:func:`zcio_quart.why_not_zerocopy`): Quart's own
      ``http.response.start``, then one ``zerocopysend`` of the file (``offset`` = the range's
      start, ``count`` = its length, ``more_body=False``), opened before the start by
      :meth:`zcio_quart.FileBody.open` (on the event loop when the kernel has it cached, else in
      a worker thread; beneath the folder for ``send_from_directory``). If a path given to
      ``send_file`` cannot be opened, Quart's own path runs, and fails as Quart does;
    - else, for a whole file of ``send_file`` of a path, when the server advertises
      ``http.response.pathsend`` under the same conditions: the start, then one ``pathsend`` of
      the absolute path. Never for ``send_from_directory``: the server would open the path again,
      after the check (a symlink swapped in meanwhile would be followed);
    - a HEAD request, under either condition: the start and one empty body (Quart reads the
      whole file for a body every server drops);
    - else Quart's path: 8 KiB reads through aiofiles, one body message each; for
      ``send_from_directory`` from the file opened beneath the folder before the start.

    For ``send_from_directory``, a name that no longer leads to a regular file beneath the
    folder when the file is opened for sending (a swap since the check when the body was built)
    is answered, before anything else is sent and whichever path, with werkzeug's own 404 (the
    app's error handlers and ``after_request`` functions have run already); another
    ``OSError`` of that open propagates before the start: the server answers 500.

    Errors and cancellation: the file is closed after the message that carried it, whatever
    happens (the end, an error from ``send``, Quart's response timeout, the client leaving,
    which cancels the sending task). A cancelled send has sent some, all or none of the file;
    a file that shrank after its size went into the headers is the server's to abort.
    """

    async def _send_response(self, send: Any, response: Any) -> None:
        body = response.response if isinstance(response, Response) else None
        if type(body) is not FileBody:
            await super()._send_response(send, response)
            return
        how = self._file_message(send, response, body)
        try:
            # Opened before the start, on Quart's path too: a name no longer beneath the folder
            # is then a 404, never a response cut after its headers.
            try:
                wanted = how == ZEROCOPYSEND or body.folder is not None
                file = await body.open() if wanted else None
            except NotFound as exc:
                await _send_whole(send, exc.get_response())
                return
            if how is None or (how == ZEROCOPYSEND and file is None):
                await super()._send_response(send, response)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": encode_headers(response.headers),
                }
            )
            if how == ZEROCOPYSEND:
                message: Any = {
                    "type": ZEROCOPYSEND,
                    "file": file,
                    "offset": body.begin,
                    "count": body.end - body.begin,
                    "more_body": False,
                }
            elif how == PATHSEND:
                message = {"type": PATHSEND, "path": _absolute(body.file_path)}
            else:
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)
        finally:
            body.close()

    def _file_message(self, send: Any, response: Response, body: FileBody) -> str | None:
        """The message that carries ``body``, ``HEAD``, or ``None`` for Quart's own path."""
        status = response.status_code
        count = body.end - body.begin
        if (
            status < 200
            or status in (204, 304)
            or not 0 <= body.begin < body.end <= body.size
            or response.content_length != count
        ):
            return None
        scope = self.scope
        if why_not(scope, send, ZEROCOPYSEND) is None:
            return HEAD if scope.get("method") == "HEAD" else ZEROCOPYSEND
        if why_not(scope, send, PATHSEND) is None:
            if scope.get("method") == "HEAD":
                return HEAD
            if body.folder is None and count == body.size:
                return PATHSEND
        return None


async def _send_whole(send: Any, response: WerkzeugResponse) -> None:
    """A small response Quart's error handling would have made, in two messages."""
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": encode_headers(response.headers),
        }
    )
    await send({"type": "http.response.body", "body": response.get_data(), "more_body": False})


def _absolute(path: os.PathLike[str]) -> str:
    """The absolute path ``pathsend`` needs (relative to the working directory, as ``open``)."""
    return os.path.abspath(path)
