"""The Django or Litestar static files of one folder, for tests/test_hostile_static.py (run as
a subprocess under uvicorn with zcio_uvicorn's protocol).

``ZCIO_HOSTILE_FRAMEWORK``: ``django`` or ``litestar``; ``ZCIO_HOSTILE_ROOT``: the folder.

GET /static/PATH    zcio's drop-in, contained (the default)
GET /follow/PATH    zcio's drop-in with ``follow_symlink=True``
GET /stock/PATH     the framework's own static files (for measuring, not for tests)
GET /stats          the server's RSS and peak RSS (kB) and its open fds, as JSON
"""

from __future__ import annotations

import json
import os
from typing import Any

FRAMEWORK = os.environ.get("ZCIO_HOSTILE_FRAMEWORK", "litestar")
ROOT = os.environ.get("ZCIO_HOSTILE_ROOT", "/nonexistent")


def stats() -> dict[str, int]:
    found = {"rss_kb": 0, "peak_rss_kb": 0, "fds": len(os.listdir("/proc/self/fd"))}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                found["rss_kb"] = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                found["peak_rss_kb"] = int(line.split()[1])
    return found


async def send_stats(send: Any) -> None:
    body = json.dumps(stats()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _django() -> Any:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="zcio-hostile-static",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.staticfiles"],
        MIDDLEWARE=[],
        STATIC_URL="static/",
        STATICFILES_DIRS=[ROOT],
        LOGGING_CONFIG=None,
    )
    django.setup(set_prefix=False)
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler as Stock
    from django.core.handlers.asgi import ASGIHandler

    import zcio_django

    handlers = {
        "static": zcio_django.ASGIStaticFilesHandler(ASGIHandler()),
        "follow": zcio_django.ASGIStaticFilesHandler(ASGIHandler(), follow_symlink=True),
        "stock": Stock(ASGIHandler()),
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        # Each handler serves STATIC_URL: the prefix picks the handler, then becomes /static/.
        if scope["type"] != "http":
            return
        if scope["path"] == "/stats":
            await send_stats(send)
            return
        prefix, _, rest = scope["path"][1:].partition("/")
        raw = scope.get("raw_path") or scope["path"].encode()
        raw_rest = raw[1:].partition(b"/")[2]
        scope = {**scope, "path": "/static/" + rest, "raw_path": b"/static/" + raw_rest}
        await handlers.get(prefix, handlers["static"])(scope, receive, send)

    return app


urlpatterns: list[Any] = []


def _litestar() -> Any:
    from litestar import Litestar, get
    from litestar.static_files import create_static_files_router as stock_router

    from zcio_litestar import create_static_files_router

    @get("/stats", sync_to_thread=False)
    def stats_view() -> dict[str, int]:
        return stats()

    return Litestar(
        route_handlers=[
            stats_view,
            create_static_files_router("/static", directories=[ROOT]),
            create_static_files_router(
                "/follow", directories=[ROOT], name="follow", follow_symlink=True
            ),
            stock_router("/stock", directories=[ROOT], name="stock"),
        ]
    )


app = _django() if FRAMEWORK == "django" else _litestar()
