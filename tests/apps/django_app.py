"""A Django project in one module, for zcio_django's tests (in process, and as a subprocess
under uvicorn, zcio_uvicorn or granian).

``application``: zcio_django's handler wrapped in its static-files handler; with
``ZCIO_DJANGO_STOCK=1`` in the environment, Django's own. ``stock_application`` and
``zcio_application`` are both, for in-process comparison.

GET /file?path=P[&attachment=1][&filename=N][&skip=K][&wrap=1]
    ``FileResponse(open(P, "rb"))``: as an attachment, with a filename, after reading K bytes,
    or inside Django's ``File``
GET /gzip?path=P       the same through ``gzip_page`` (GZipMiddleware rewrites the body)
GET /bytes?size=N      ``FileResponse(BytesIO(...))``: a file-like that is not a file
GET /shrink?path=P     promise the whole file, then truncate it to half before sending
GET /serve/<name>      ``django.views.static.serve`` from ``ZCIO_DJANGO_ROOT``
GET /static/<name>     the static-files handler, from ``ZCIO_DJANGO_ROOT``
GET /text              an ordinary response, with a cookie
GET /stats             zcio's bytes per method, open fds, peak RSS (kB), as JSON
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

import django
from django.conf import settings

ROOT = os.environ.get("ZCIO_DJANGO_ROOT") or tempfile.gettempdir()

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="zcio-django-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.staticfiles"],
        MIDDLEWARE=[],
        STATIC_URL="static/",
        STATICFILES_DIRS=[ROOT],
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup(set_prefix=False)

from django.contrib.staticfiles.handlers import (  # noqa: E402
    ASGIStaticFilesHandler as StockStaticFilesHandler,
)
from django.core.files.base import File  # noqa: E402
from django.core.handlers.asgi import ASGIHandler as StockASGIHandler  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
)
from django.urls import path, re_path  # noqa: E402
from django.views.decorators.gzip import gzip_page  # noqa: E402
from django.views.static import serve  # noqa: E402

import zcio  # noqa: E402
import zcio_django  # noqa: E402


def file_view(request: HttpRequest) -> HttpResponseBase:
    q = request.GET
    f: Any = open(q["path"], "rb")  # noqa: SIM115 - the response closes it
    if q.get("skip"):
        f.read(int(q["skip"]))
    if q.get("wrap"):
        f = File(f)
    return FileResponse(f, as_attachment=bool(q.get("attachment")), filename=q.get("filename", ""))


@gzip_page
def gzip_view(request: HttpRequest) -> HttpResponseBase:
    return FileResponse(open(request.GET["path"], "rb"))


def bytes_view(request: HttpRequest) -> HttpResponseBase:
    size = int(request.GET.get("size", "100000"))
    return FileResponse(io.BytesIO(bytes(range(256)) * (size // 256)), filename="data.bin")


def shrink_view(request: HttpRequest) -> HttpResponseBase:
    p = request.GET["path"]
    response = FileResponse(open(p, "rb"))  # noqa: SIM115
    os.truncate(p, os.path.getsize(p) // 2)
    return response


def text_view(request: HttpRequest) -> HttpResponseBase:
    response = HttpResponse("hello, ordinary response", content_type="text/plain")
    response.set_cookie("flavour", "plain", httponly=True)  # no max_age: Expires is the clock
    return response


def stats_view(request: HttpRequest) -> HttpResponseBase:
    methods = {name: m.bytes for name, m in zcio.stats().methods.items()}
    fds = len(os.listdir("/proc/self/fd"))
    peak = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return JsonResponse({"bytes": methods, "fds": fds, "peak_rss_kb": peak})


def serve_view(request: HttpRequest, name: str) -> HttpResponseBase:
    return serve(request, name, document_root=ROOT)


urlpatterns = [
    path("file", file_view),
    path("gzip", gzip_view),
    path("bytes", bytes_view),
    path("shrink", shrink_view),
    path("text", text_view),
    path("stats", stats_view),
    re_path(r"^serve/(?P<name>.+)$", serve_view),
]

stock_application: Any = StockStaticFilesHandler(StockASGIHandler())
zcio_application: Any = zcio_django.ASGIStaticFilesHandler(zcio_django.get_asgi_application())
application = stock_application if os.environ.get("ZCIO_DJANGO_STOCK") else zcio_application
