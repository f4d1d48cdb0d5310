"""pytest plugin: uvicorn's own protocol tests, run against zcio_uvicorn's protocols.

uvicorn's fixture imports its protocol classes by dotted name when each test runs; replacing
those names with zcio's subclasses makes every upstream HTTP protocol test exercise them.

With ZCIO_UVICORN_PROBE=1 (set by .ci/uvicorn_range, which tries releases outside the supported
range to decide whether they belong in it) zcio_uvicorn's import-time version check is passed
once; nothing else ever skips it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

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


def pytest_configure() -> None:
    zcio_uvicorn = _import_zcio_uvicorn()
    h11_impl.H11Protocol = zcio_uvicorn.H11Protocol  # type: ignore[misc]
    httptools_impl.HttpToolsProtocol = zcio_uvicorn.HttpToolsProtocol  # type: ignore[misc]


def pytest_report_header() -> str:
    return "zcio: uvicorn's HTTP protocols replaced by zcio_uvicorn's subclasses"
