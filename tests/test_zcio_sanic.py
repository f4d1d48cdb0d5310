"""zcio_sanic in-process: ASGI mode (Sanic's own path, the same responses as stock), the
responses' headers and ownership of the open file, without a server.

The live behaviour (sendfile on Sanic's server, TLS, faults, races) is in
tests/test_zcio_sanic_live.py; Sanic's own suites in tests/test_sanic_upstream.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sanic import Sanic
from sanic.compat import Header
from sanic.handlers import ContentRangeHandler
from sanic.response import file as stock_file, file_stream as stock_file_stream

import zcio
import zcio_sanic
from _support import make_data

DATA = make_data(300_000, seed=243)


def _app(root: Path) -> Sanic[Any, Any]:
    app = Sanic(f"zcio_sanic_asgi_{id(root)}", configure_logging=False)
    uses: dict[str, Any] = {
        "stock/file": stock_file,
        "stock/stream": stock_file_stream,
        "zcio/file": zcio_sanic.file,
        "zcio/stream": zcio_sanic.file_stream,
    }

    @app.get("/<side:stock|zcio>/<kind:file|stream>/<name>")
    async def serve(request: Any, side: str, kind: str, name: str) -> Any:
        path = root / name
        try:
            _range = ContentRangeHandler(request, path.stat())
        except Exception:
            _range = None
        return await uses[f"{side}/{kind}"](path, _range=_range)

    app.static("/static", root)
    zcio_sanic.install(app)
    return app


@pytest.mark.parametrize("kind", ["file", "stream"])
@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=10-4105"}], ids=["whole", "range"])
def test_asgi_mode_is_sanics_own_path(tmp_path: Path, kind: str, headers: dict[str, str]) -> None:
    (tmp_path / "data.bin").write_bytes(DATA)
    app = _app(tmp_path)

    async def main() -> tuple[Any, Any]:
        _, stock = await app.asgi_client.get(f"/stock/{kind}/data.bin", headers=headers)
        _, ours = await app.asgi_client.get(f"/zcio/{kind}/data.bin", headers=headers)
        return stock, ours

    before = zcio.stats().methods
    stock, ours = asyncio.run(main())
    after = zcio.stats().methods
    assert ours.status == stock.status
    assert ours.body == stock.body == (DATA[10:4106] if headers else DATA)
    same = {"content-type", "content-range", "last-modified", "cache-control"}
    assert {k: v for k, v in ours.headers.items() if k in same} == {
        k: v for k, v in stock.headers.items() if k in same
    }
    assert {m: s.bytes for m, s in after.items()} == {m: s.bytes for m, s in before.items()}


def test_file_headers_and_the_open_file(tmp_path: Path) -> None:
    path = tmp_path / 'a "quoted" name.txt'
    path.write_bytes(DATA)

    async def main() -> None:
        ours = await zcio_sanic.file(path, filename="r\u00e9sum\u00e9.txt", max_age=60)
        theirs = await stock_file(path, filename="r\u00e9sum\u00e9.txt", max_age=60)
        assert isinstance(ours, zcio_sanic.ZeroCopyFile)
        assert ours.status == theirs.status and ours.content_type == theirs.content_type
        assert dict(ours.headers) == dict(theirs.headers)
        assert ours.body == b""  # the file stays on disk until sent
        ours.__del__()  # never sent: the file is closed (the fd check after the test)
        with pytest.raises(FileNotFoundError):
            await zcio_sanic.file(tmp_path / "missing.bin")
        # A 304 closes the file it opened for the modification time.
        later = Header({"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"})
        not_modified = await zcio_sanic.file(path, request_headers=later)
        assert not_modified.status == 304

    asyncio.run(main())
