"""``StaticFiles``: Starlette's, serving every file through :class:`zcio_starlette.FileResponse`."""

from __future__ import annotations

import os

from starlette.responses import FileResponse as StarletteFileResponse, Response
from starlette.staticfiles import StaticFiles as StarletteStaticFiles
from starlette.types import Scope

from ._responses import FileResponse

__all__ = ["StaticFiles"]


class StaticFiles(StarletteStaticFiles):
    """Starlette's ``StaticFiles`` (same constructor, lookups, 304s, 404s and HTML mode) whose
    file responses are :class:`zcio_starlette.FileResponse`: zero-copy where the server and
    the middleware allow it, Starlette's own bytes otherwise.

    The file was already looked up and stat'ed by ``StaticFiles`` in a worker thread; the
    response adds one more trip, to open it. Errors and cancellation are the response's.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        return _adopt(super().file_response(full_path, stat_result, scope, status_code))

    async def get_response(self, path: str, scope: Scope) -> Response:
        # The HTML mode's 404.html is built inside get_response with Starlette's FileResponse.
        return _adopt(await super().get_response(path, scope))


def _adopt(response: Response) -> Response:
    """The same response as a :class:`FileResponse` if Starlette built a plain one."""
    if type(response) is not StarletteFileResponse:
        return response  # a 304, a redirect, or already ours
    assert response.stat_result is not None  # StaticFiles always passes the stat it made
    return FileResponse(
        response.path, status_code=response.status_code, stat_result=response.stat_result
    )
