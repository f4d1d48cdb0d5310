"""An app for zcio_hypercorn's live tests: zcio_starlette's responses, and raw ASGI routes that
send the file messages themselves.

Starlette (zcio_starlette), over $ZCIO_TEST_ROOT:
GET /files/NAME         StaticFiles
GET /download/NAME      FileResponse (Range honoured)
Raw ASGI:
GET /zc/NAME?offset=&count=&chunked=1&status=   zerocopysend of a slice (Content-Length, or
                        chunked with a body message before and after the file)
GET /path/NAME          pathsend of the whole file
GET /shrink/NAME        promises the file's size, truncates it to half, then zerocopysend
GET /stats              {"pid", "bytes": zcio's bytes per method, "fds": open fds,
                         "extensions": what this request's scope offered}
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route

import zcio
from zcio_starlette import FileResponse, StaticFiles

ROOT = os.environ.get("ZCIO_TEST_ROOT", "/nonexistent")


async def download(request: Request) -> FileResponse:
    return FileResponse(os.path.join(ROOT, request.path_params["name"]))


starlette = Starlette(
    routes=[Route("/download/{name}", download), Mount("/files", StaticFiles(directory=ROOT))]
)


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


async def _start(send: Any, status: int, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await starlette(scope, receive, send)
        return
    path: str = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    name = os.path.join(ROOT, path.rpartition("/")[2])
    if path == "/stats":
        body = _json(
            {
                "pid": os.getpid(),
                "bytes": {n: m.bytes for n, m in zcio.stats().methods.items()},
                "fds": len(os.listdir("/proc/self/fd")),
                "extensions": sorted(scope.get("extensions") or {}),
            }
        )
        await _start(send, 200, [(b"content-length", b"%d" % len(body))])
        await send({"type": "http.response.body", "body": body})
    elif path.startswith("/zc/"):
        size = os.path.getsize(name)
        offset = int(query.get("offset", 0))
        count = int(query.get("count", size - offset))
        status = int(query.get("status", 200))
        with open(name, "rb") as file:
            if query.get("chunked"):
                await _start(send, status, [])
                await send({"type": "http.response.body", "body": b"<", "more_body": True})
                message = {"file": file, "offset": offset, "count": count, "more_body": True}
                await send({"type": "http.response.zerocopysend", **message})
                await send({"type": "http.response.body", "body": b">"})
            else:
                await _start(send, status, [(b"content-length", b"%d" % count)])
                message = {"file": file, "offset": offset, "count": count}
                await send({"type": "http.response.zerocopysend", **message})
    elif path.startswith("/path/"):
        await _start(send, 200, [(b"content-length", b"%d" % os.path.getsize(name))])
        await send({"type": "http.response.pathsend", "path": name})
    elif path.startswith("/shrink/"):
        size = os.path.getsize(name)
        with open(name, "rb+") as file:
            await _start(send, 200, [(b"content-length", b"%d" % size)])
            file.truncate(size // 2)
            await send({"type": "http.response.zerocopysend", "file": file, "count": size})
    else:
        await starlette(scope, receive, send)
