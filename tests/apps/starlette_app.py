"""A Starlette app serving files with zcio_starlette, for interop tests against real servers.

GET /files/NAME        zcio_starlette.StaticFiles over $ZCIO_TEST_ROOT
GET /download/NAME     zcio_starlette.FileResponse of $ZCIO_TEST_ROOT/NAME (Range honoured)
GET /sent              which ASGI body message types the app sent so far, and zcio's counters
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import zcio
from zcio_starlette import FileResponse, StaticFiles

ROOT = os.environ.get("ZCIO_TEST_ROOT", "/nonexistent")
SENT: Counter[str] = Counter()


async def download(request: Request) -> FileResponse:
    return FileResponse(os.path.join(ROOT, request.path_params["name"]))


async def sent(request: Request) -> JSONResponse:
    methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
    return JSONResponse({"messages": dict(SENT), "zcio": methods})


def counting(app: Any) -> Any:
    """Pure ASGI middleware recording the body message types: proof of the path taken."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        async def counted(message: Any) -> None:
            if (
                message["type"].startswith("http.response.")
                and message["type"] != "http.response.start"
            ):
                SENT[message["type"]] += 1
            await send(message)

        await app(scope, receive, counted)

    return wrapped


app = counting(
    Starlette(
        routes=[
            Route("/download/{name}", download),
            Route("/sent", sent),
            Mount("/files", StaticFiles(directory=ROOT)),
        ]
    )
)
