"""servestatic's ``ServeStaticASGI`` in front of a plain ASGI app, for tests on real servers.

GET /static/NAME   servestatic over $ZCIO_TEST_ROOT (ranges, .gz variants, 304s, HEAD)
GET /stats         zcio's bytes per method, open fds (the app behind servestatic answers)
anything else      the app behind servestatic: a 404
"""

from __future__ import annotations

import json
import os
from typing import Any

from servestatic import ServeStaticASGI

import zcio


async def behind(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/stats":
        methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
        body = json.dumps({"bytes": methods, "fds": len(os.listdir("/proc/self/fd"))}).encode()
        status = 200
    else:
        body, status = b"not found", 404
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


app = ServeStaticASGI(
    behind, root=os.environ.get("ZCIO_TEST_ROOT", "/nonexistent"), prefix="static"
)
