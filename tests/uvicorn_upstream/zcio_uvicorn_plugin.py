"""pytest plugin: uvicorn's own protocol tests, run against zcio_uvicorn's protocols.

uvicorn's fixture imports its protocol classes by dotted name when each test runs; replacing
those names with zcio's subclasses makes every upstream HTTP protocol test exercise them.
"""

from __future__ import annotations

import uvicorn.protocols.http.h11_impl as h11_impl
import uvicorn.protocols.http.httptools_impl as httptools_impl

import zcio_uvicorn


def pytest_configure() -> None:
    h11_impl.H11Protocol = zcio_uvicorn.H11Protocol  # type: ignore[misc]
    httptools_impl.HttpToolsProtocol = zcio_uvicorn.HttpToolsProtocol  # type: ignore[misc]


def pytest_report_header() -> str:
    return "zcio: uvicorn's HTTP protocols replaced by zcio_uvicorn's subclasses"
