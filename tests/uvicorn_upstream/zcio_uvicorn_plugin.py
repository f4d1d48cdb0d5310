"""pytest plugin: uvicorn's own protocol tests, run against zcio_uvicorn's protocols.

uvicorn's fixture imports its protocol classes by dotted name when each test runs; replacing
those names with zcio's subclasses makes every upstream HTTP protocol test exercise them.

With ZCIO_UVICORN_PROBE=1 (set by .ci/uvicorn_range, which tries releases outside the supported
range to decide whether they belong in it) zcio_uvicorn's import-time version check is passed
once; nothing else ever skips it.

Two deliberate differences are set aside, each for the tests that assert uvicorn's own way:
- zcio_uvicorn's startup line is off (``report=False``): one upstream test asserts that the
  first log record is the access line;
- the ``test_huge_headers*`` tests send 64 KiB of header fields and expect uvicorn's unlimited
  httptools (200) and h11's own buffer limit (400): they run with zcio_uvicorn's limits off,
  which must then behave exactly as uvicorn. tests/test_zcio_uvicorn_limits.py tests the limits.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn
import uvicorn.protocols.http.h11_impl as h11_impl
import uvicorn.protocols.http.httptools_impl as httptools_impl


def _import_zcio_uvicorn() -> ModuleType:
    if not os.environ.get("ZCIO_UVICORN_PROBE"):
        import zcio_uvicorn

        return zcio_uvicorn
    # The range lives in zcio_uvicorn/_supported.py: load that file alone (importing it as
    # zcio_uvicorn._supported would run the package's check first).
    package = importlib.util.find_spec("zcio_uvicorn")
    assert package is not None and package.submodule_search_locations is not None
    path = Path(next(iter(package.submodule_search_locations))) / "_supported.py"
    spec = importlib.util.spec_from_file_location("_zcio_uvicorn_supported", path)
    assert spec is not None and spec.loader is not None
    supported = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(supported)
    real = uvicorn.__version__
    uvicorn.__version__ = ".".join(map(str, supported.SUPPORTED[0]))
    try:
        import zcio_uvicorn

        return zcio_uvicorn
    finally:
        uvicorn.__version__ = real


zcio_uvicorn = _import_zcio_uvicorn()
NO_LIMITS = zcio_uvicorn.Limits(
    max_request_line=None,
    max_header_bytes=None,
    max_headers=None,
    head_timeout=None,
    max_connections=None,
    send_timeout=None,
)
H11 = zcio_uvicorn.H11Protocol.configure(report=False)
HTTPTOOLS = zcio_uvicorn.HttpToolsProtocol.configure(report=False)
UNLIMITED = {
    "H11Protocol": zcio_uvicorn.H11Protocol.configure(NO_LIMITS, report=False),
    "HttpToolsProtocol": zcio_uvicorn.HttpToolsProtocol.configure(NO_LIMITS, report=False),
}


def pytest_configure() -> None:
    h11_impl.H11Protocol = H11  # type: ignore[misc]
    httptools_impl.HttpToolsProtocol = HTTPTOOLS  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _unlimited_for_huge_headers(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.node.name.startswith("test_huge_headers"):
        yield
        return
    module: Any = request.module
    saved = {name: getattr(module, name) for name in UNLIMITED if hasattr(module, name)}
    for name in saved:
        setattr(module, name, UNLIMITED[name])
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


def pytest_report_header() -> str:
    return "zcio: uvicorn's HTTP protocols replaced by zcio_uvicorn's subclasses"
