"""The Django project that ``bench/django_files.py`` measures, in two flavours with the same
routes (the Django counterpart of ``bench/http_app.py``).

``ZCIO_BENCH_FLAVOUR=stock``: Django's own ``get_asgi_application()``;
``ZCIO_BENCH_FLAVOUR=zcio``: ``zcio_django.get_asgi_application()``; nothing else differs.
``ZCIO_BENCH_FILES`` is the folder of files (``bench/http_files.py``'s ``prepare_files``).

Routes:

- ``GET /f/{name}``: ``FileResponse(open(folder / name, "rb"))`` for the names in
  :data:`FILES` (anything else is a 404);
- ``GET /m/{name}``: an ``HttpResponse`` of the same bytes, from memory, for the small files;
- ``GET /zcio-stats``: ``zcio.stats()`` as JSON in the zcio flavour (``{}`` in the stock one).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import django
from django.conf import settings

FLAVOUR = os.environ.get("ZCIO_BENCH_FLAVOUR", "stock")
FOLDER = Path(os.environ.get("ZCIO_BENCH_FILES", "/tmp/zcio-bench/http-root/f"))
FILES = ("4k.bin", "64k.bin", "large.bin")
SMALL = {name: (FOLDER / name).read_bytes() for name in ("4k.bin", "64k.bin")}

settings.configure(
    DEBUG=False,
    SECRET_KEY="zcio-bench",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup(set_prefix=False)

from django.http import (  # noqa: E402
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.urls import path  # noqa: E402


def serve_file(request: HttpRequest, name: str) -> HttpResponseBase:
    if name not in FILES:
        raise Http404(name)
    return FileResponse(open(FOLDER / name, "rb"))


def serve_memory(request: HttpRequest, name: str) -> HttpResponseBase:
    if name not in SMALL:
        raise Http404(name)
    response = HttpResponse(SMALL[name], content_type="application/octet-stream")
    response["Content-Length"] = str(len(SMALL[name]))  # as CommonMiddleware would set it
    return response


def zcio_stats(request: HttpRequest) -> HttpResponseBase:
    response = JsonResponse(_stats())
    response["Content-Length"] = str(len(response.content))
    return response


def _stats() -> dict[str, Any]:
    if FLAVOUR != "zcio":
        return {}
    import zcio

    s = zcio.stats()
    methods = {
        name: {"transfers": m.transfers, "calls": m.calls, "bytes": m.bytes}
        for name, m in s.methods.items()
    }
    return {"methods": methods}


urlpatterns = [
    path("f/<str:name>", serve_file),
    path("m/<str:name>", serve_memory),
    path("zcio-stats", zcio_stats),
]

application: Any
if FLAVOUR == "zcio":
    import zcio_django

    application = zcio_django.get_asgi_application()
elif FLAVOUR == "stock":
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()
else:
    raise RuntimeError(f"ZCIO_BENCH_FLAVOUR must be 'stock' or 'zcio', not {FLAVOUR!r}")
