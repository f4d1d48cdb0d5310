"""``ZcioStats``: an ASGI endpoint that shows zcio's counters, for Prometheus or for a person."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

import zcio

from ._sendpath import why_not_zerocopy

__all__ = ["ZcioStats"]

#: The content type of the Prometheus text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ZcioStats:
    """An ASGI app answering ``GET`` (and ``HEAD``) with :meth:`zcio.Stats.prometheus` of this
    process, and one comment line saying whether a file response on this route would go
    zero-copy (and if not, why: most often a server run without
    ``--http zcio_uvicorn:HttpToolsProtocol``)::

        app = Starlette(routes=[..., Route("/metrics", zcio_starlette.ZcioStats())])

    ``curl http://127.0.0.1:8000/metrics`` then shows the bytes each method moved. Cheap:
    a snapshot under a lock and string formatting, no I/O, no awaiting beyond ``send``. Other
    methods get 405. Errors from ``send`` (a client gone) propagate, as for any response.
    Behind ``--workers N`` each request answers for the worker process that served it.
    """

    def __init__(self, prefix: str = "zcio") -> None:
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise ValueError(f"ZcioStats serves HTTP requests, not {scope['type']!r}")
        if scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse(
                "Method Not Allowed\n", status_code=405, headers={"Allow": "GET, HEAD"}
            )
            await response(scope, receive, send)
            return
        reason = why_not_zerocopy(scope, send)
        verdict = "on" if reason is None else f"off ({reason})"
        text = zcio.stats().prometheus(self.prefix)
        text = f"# zcio {zcio.__version__}: zero-copy file responses here: {verdict}\n{text}"
        await PlainTextResponse(text, media_type=CONTENT_TYPE)(scope, receive, send)
