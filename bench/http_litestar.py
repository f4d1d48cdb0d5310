"""Benchmark Litestar file responses over HTTP: stock Litestar, ``zcio_litestar`` and
servestatic, against nginx with ``sendfile on``.

The app (``bench/http_litestar_app.py``) serves the folder of ``bench/http_files.py`` with
Litestar's ``File`` (stock ``litestar.response.File`` or ``zcio_litestar.File``, same routes),
or with servestatic's ``ServeStaticASGI`` in front of it, and the small files' bytes from
memory with an ordinary Litestar ``Response``. Servers, each a fresh process per run:

- stock Litestar ``File`` on uvicorn (``--http httptools --loop asyncio``): the baseline;
- ``zcio_litestar.File`` on uvicorn with ``--http zcio_uvicorn:HttpToolsProtocol``, on the
  asyncio loop and on uvloop;
- servestatic in front of the app, on the same zcio_uvicorn server (its own ``zerocopysend``);
- nginx with ``sendfile on`` (the anchor), when installed.

The measuring is ``bench/http_files.py``'s (same client, same tables, same options): figure 1
is one large cached file over one connection (GB/s, server CPU per GiB), figure 2 the 4 and
64 KiB files with ``wrk -t2 -c32`` against the same server's in-memory ``Response``.

Targets (issue 14), printed and never asserted: the large file at >= 0.9x nginx's GB/s and
<= 1.2x its server CPU per GiB; small files at >= 0.5x the same app's in-memory response.

    python bench/http_litestar.py [--size-mib N] [--runs N] [--wrk-runs N] [--wrk-seconds S]
                                  [--servers KEY,...] [--figures 1|2|both] [--quick] [--json PATH]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import http_files as hf
from http_files import NGINX, Sections, Variant

APP = "http_litestar_app:app"
ZCIO_HTTP = "zcio_uvicorn:HttpToolsProtocol"

STOCK = Variant(
    "stock_litestar_uvicorn",
    "Litestar `File`, uvicorn `--http httptools --loop asyncio`",
    "uvicorn",
    "stock",
    loop="asyncio",
    http="httptools",
    needs=("uvicorn", "httptools", "litestar"),
    app=APP,
)
VARIANTS: tuple[Variant, ...] = (
    STOCK,
    *(
        Variant(
            f"zcio_litestar_{loop}",
            f"zcio_litestar `File`, uvicorn `--http {ZCIO_HTTP} --loop {loop}`",
            "uvicorn",
            "zcio",
            loop=loop,
            http=ZCIO_HTTP,
            needs=("uvicorn", "httptools", "litestar", "zcio_litestar", *extra),
            app=APP,
        )
        for loop, extra in (("asyncio", ()), ("uvloop", ("uvloop",)))
    ),
    Variant(
        "servestatic_zcio_uvicorn",
        f"servestatic `ServeStaticASGI` (before Litestar), uvicorn `--http {ZCIO_HTTP} "
        "--loop asyncio`",
        "uvicorn",
        "servestatic",
        loop="asyncio",
        http=ZCIO_HTTP,
        needs=("uvicorn", "httptools", "litestar", "servestatic"),
        app=APP,
    ),
    NGINX,
)

#: The two sections of ``zcio bench``'s table.
SECTIONS = Sections(
    "http_litestar",
    "litestar",
    "stock Litestar `File`, uvicorn (httptools, asyncio)",
    "one large cached file, Litestar and servestatic; CPU: the server's process tree",
    "4 and 64 KiB files, Litestar and servestatic, `wrk -t2 -c32`; x columns: 4 KiB file req/s",
    {"nginx": "anchor", STOCK.key: "baseline"},
    (
        ("nginx", "nginx, `sendfile on`", "nginx"),
        ("servestatic_zcio_uvicorn", "servestatic `ServeStaticASGI`, zcio_uvicorn", "servestatic"),
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    """``bench/http_files.py``'s main, measuring these servers with issue 14's targets."""
    hf.VARIANTS = VARIANTS
    hf.STOCK = STOCK
    hf.SUBJECT = "zcio_litestar and servestatic"
    hf.STOCK_TEXT = "Litestar's File on uvicorn, httptools, asyncio loop"
    hf.IN_MEMORY = "Litestar `Response`"
    hf.VERSIONS_OF = ("litestar", "servestatic", "uvicorn", "httptools")
    hf.TARGET_X_NGINX_CPU = 1.2
    hf.TARGET_X_STOCK_GBPS = 0.0  # no target against stock Litestar: it is already cheap
    hf.SECTIONS = SECTIONS
    return hf.main(argv)


if __name__ == "__main__":
    sys.exit(main())
