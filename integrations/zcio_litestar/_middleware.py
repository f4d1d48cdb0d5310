"""``NoZeroCopyMiddleware``: hide the file extensions from the part of an app that sits behind
a body rewriter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zcio.asgi import without_extensions

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["NoZeroCopyMiddleware"]


class NoZeroCopyMiddleware:
    """Removes ``http.response.zerocopysend`` and ``http.response.pathsend`` from the
    extensions the wrapped app sees, so that its file responses send Litestar's ordinary
    ``http.response.body`` messages.

    Put it inside a middleware of your own that rewrites or inspects response bodies and does
    not know the two messages (Litestar's compression, response cache, logging and Prometheus
    middlewares need nothing: :class:`zcio_litestar.ASGIFileResponse` notices them by itself).
    Litestar takes it like any middleware: ``middleware=[MyBodyRewriter,
    NoZeroCopyMiddleware]`` on the app, a router or a handler. The scope's ``extensions`` is
    replaced by a copy without the two (the server's own dict is not modified). Errors and
    cancellation pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kept = without_extensions(scope.get("extensions"))
        if scope.get("type") == "http" and kept is not None:  # type: ignore[comparison-overlap]
            scope["extensions"] = kept
        await self.app(scope, receive, send)
