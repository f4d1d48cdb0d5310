"""Two Quart apps serving the same files, stock Quart (``/stock/...``) and Quart with
``zcio_quart.install`` (``/zcio/...``), for tests against real servers (run as a subprocess).

GET|HEAD /S/file?name=N[&conditional=1&attachment=1]   send_file($ZCIO_TEST_ROOT/N)
GET|HEAD /S/dir/NAME          send_from_directory($ROOT/www, NAME)
GET|HEAD /S/static/NAME       the app's static folder, $ROOT/www
GET|HEAD /S/bytesio           send_file of a BytesIO
GET /S/replaced?name=N        send_file, whose body an after_request replaces
GET /zcio/shrink?name=N       the file's size goes into the headers, then the file shrinks
GET /stats                    zcio's bytes per method, the body messages per side, open fds
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path
from typing import Any

from quart import Quart, Response, request, send_file, send_from_directory

import zcio
import zcio_quart

ROOT = Path(os.environ.get("ZCIO_TEST_ROOT", "/nonexistent"))
SENT: Counter[str] = Counter()
BYTESIO = b"".join(b"%d bytes in memory\n" % i for i in range(2000))


def make_app(name: str, root: Path = ROOT) -> Quart:
    """The app: its files under ``root``, its static folder ``root/www``."""
    app = Quart(name, static_folder=str(root / "www"), static_url_path="/static")

    @app.route("/file", methods=["GET", "HEAD"])
    async def file() -> Response:
        return await send_file(
            root / request.args["name"],
            conditional="conditional" in request.args,
            as_attachment="attachment" in request.args,
        )

    @app.route("/dir/<path:name>", methods=["GET", "HEAD"])
    async def directory(name: str) -> Response:
        return await send_from_directory(root / "www", name)

    @app.route("/bytesio", methods=["GET", "HEAD"])
    async def bytesio() -> Response:
        return await send_file(io.BytesIO(BYTESIO), mimetype="text/plain", conditional=True)

    @app.route("/replaced")
    async def replaced() -> Response:
        return await send_file(root / request.args["name"])

    @app.after_request
    async def replace(response: Response) -> Response:
        if request.path == "/replaced":
            response.set_data(b"replaced by after_request\n")
        return response

    @app.route("/shrink")
    async def shrink() -> Response:
        path = root / request.args["name"]
        response = await send_file(path)
        os.truncate(path, os.stat(path).st_size // 2)
        return response

    return app


stock = make_app("stock")
zcio_app = zcio_quart.install(make_app("zcio"))
APPS = {"stock": stock, "zcio": zcio_app}


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Dispatch ``/stock/...`` and ``/zcio/...`` to the two apps (the prefix removed), count
    the body message types each side sends (a send wrapper zcio_quart trusts: it passes every
    message on), and answer ``/stats`` and the lifespan itself."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            for each in APPS.values():
                await (each.startup() if kind == "startup" else each.shutdown())
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    path = scope["path"]
    if path == "/stats":
        await _stats(send)
        return
    side, _, rest = path[1:].partition("/")
    target = APPS.get(side)
    if target is None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return

    async def counted(message: Any) -> None:
        kind = message["type"]
        if kind.startswith("http.response.") and kind != "http.response.start":
            SENT[f"{side} {kind}"] += 1
        await send(message)

    inner: Any = dict(scope, path="/" + rest, raw_path=("/" + rest).encode())
    await target(inner, receive, counted)


async def _stats(send: Any) -> None:
    import json

    methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
    body = json.dumps(
        {"bytes": methods, "sent": dict(SENT), "fds": len(os.listdir("/proc/self/fd"))}
    ).encode()
    # Connection: close, so that no server keeps the connection open after it (hypercorn holds
    # one the client closed until its keep-alive timeout): the fd count is the app's own.
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
