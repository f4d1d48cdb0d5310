"""An ASGI app for testing zcio_uvicorn with real uvicorn servers (run as a subprocess).

GET /file?path=P&how=zerocopy|pathsend|chunked|halves|position  the file, by that kind of message
GET /truncate?path=P   promise the whole file, shrink it, then send it: the server must abort
GET /text              an ordinary response
GET /ext               the scope's extensions, as JSON
GET /stats             zcio.stats() bytes per method, open fds, as JSON

With ZCIO_TEST_ERROR_LOG=FILE, every record uvicorn logs with an exception is appended to FILE
as one JSON line (the message, the exception's type and text): a structured account for the
tests, independent of how a Python version formats tracebacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any
from urllib.parse import parse_qs

import zcio

Scope = dict[str, Any]


class _ErrorLog(logging.Handler):
    def __init__(self, path: str) -> None:
        super().__init__(logging.ERROR)
        self.path = path

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        line = {
            "message": record.getMessage().strip(),
            "exception": None if exc is None else type(exc).__name__,
            "text": None if exc is None else str(exc),
        }
        with open(self.path, "a") as f:
            f.write(json.dumps(line) + "\n")


if "ZCIO_TEST_ERROR_LOG" in os.environ:  # uvicorn configured its logging before importing us
    logging.getLogger("uvicorn.error").addHandler(_ErrorLog(os.environ["ZCIO_TEST_ERROR_LOG"]))


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    path = scope["path"]
    if path == "/text":
        await _body(send, b"hello, ordinary response")
    elif path == "/ext":
        await _body(send, json.dumps(sorted(scope.get("extensions", {}))).encode())
    elif path == "/stats":
        methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
        fds = len(os.listdir("/proc/self/fd"))
        await _body(send, json.dumps({"bytes": methods, "fds": fds}).encode())
    elif path == "/upload":  # the body's length and sha256, once it is all in
        digest, size, more = hashlib.sha256(), 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            digest.update(message.get("body", b""))
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await _body(send, f"{size} {digest.hexdigest()}".encode())
    elif path in ("/file", "/truncate"):
        await _file(scope, send, query["path"], query.get("how", "zerocopy"), path == "/truncate")
    else:
        await _body(send, b"not found", status=404)


async def _body(send: Any, body: bytes, status: int = 200) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _file(scope: Scope, send: Any, path: str, how: str, truncate: bool) -> None:
    size = os.path.getsize(path)
    headers = [] if how == "chunked" else [(b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if how == "pathsend":
        await send({"type": "http.response.pathsend", "path": path})
        return
    with open(path, "rb") as f:
        if truncate:
            os.truncate(path, size // 2)
        if how == "chunked":  # zero-copy parts mixed with ordinary body messages
            half = size // 2
            await _zc(send, f, 0, half, more=True)
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            await _zc(send, f, half, size - half, more=False)
        elif how == "halves":
            await _zc(send, f, 0, size // 2, more=True)
            await _zc(send, f, size // 2, None, more=False)
        elif how == "position":  # without an offset: from the position, which moves on
            f.read(100)  # a buffered reader: its position (100) is not the fd's
            await _zc(send, f, None, 1000, more=True)  # 100..1100
            await _zc(send, f, 0, 100, more=True)  # an offset: the position stays at 1100
            await send({"type": "http.response.body", "body": f.read(50), "more_body": True})
            await _zc(send, f, None, None, more=False)  # 1150 to the end
        else:
            await _zc(send, f, 0, size, more=False)


async def _zc(send: Any, f: Any, offset: int | None, count: int | None, *, more: bool) -> None:
    message = {"type": "http.response.zerocopysend", "file": f, "more_body": more}
    if offset is not None:
        message["offset"] = offset
    if count is not None:
        message["count"] = count
    await send(message)
