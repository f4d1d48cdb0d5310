"""``NoZeroCopyMiddleware``: hide the file extensions from an app that sits behind a body
rewriter."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from zcio.asgi import without_extensions

__all__ = ["NoZeroCopyMiddleware"]


class NoZeroCopyMiddleware:
    """Removes ``http.response.zerocopysend`` and ``http.response.pathsend`` from the scope the
    wrapped app sees, so that its file responses send ordinary ``http.response.body`` messages.

    Put it just inside a middleware that rewrites response bodies (compression, templating,
    checksums) but does not know the two messages: file bytes sent by them would go around it.
    ``GZipMiddleware`` and ``BaseHTTPMiddleware`` need nothing: :class:`FileResponse` notices
    them by itself (see :func:`zcio_starlette.why_not_zerocopy`). The server's scope is not
    modified: the app gets a copy. Errors and cancellation pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kept = without_extensions(scope.get("extensions"))
        if scope["type"] == "http" and kept is not None:
            scope = {**scope, "extensions": kept}
        await self.app(scope, receive, send)
