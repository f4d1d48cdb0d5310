"""The uvicorn versions zcio_uvicorn is known to serve correctly, checked at import.

zcio_uvicorn subclasses uvicorn's protocol and request-response cycle classes and reads their
internals (the cycle's flow control, framing state and keep-alive flags), which uvicorn may
change in any release. ``SUPPORTED`` is the range whose own HTTP protocol tests
(``tests/protocols/test_http.py`` of each version's sdist) pass against zcio_uvicorn's classes;
``pyproject.toml``'s ``uvicorn`` extra declares the same range. Outside it, importing
zcio_uvicorn raises ``UnsupportedUvicorn`` (an ``ImportError``) rather than risk a wrong
response.
"""

from __future__ import annotations

import re

__all__ = ["SUPPORTED", "UnsupportedUvicorn", "check", "describe"]

# [lowest supported, first unsupported): the uvicorn releases tested, by (major, minor, patch).
SUPPORTED: tuple[tuple[int, int, int], tuple[int, int, int]] = ((0, 36, 0), (0, 55, 0))


class UnsupportedUvicorn(ImportError):
    """The installed uvicorn is outside the range zcio_uvicorn was tested against."""


def describe() -> str:
    """The supported range as a pip requirement, e.g. ``uvicorn>=0.36,<0.55``."""
    low, high = (".".join(map(str, v[: 3 if v[2] else 2])) for v in SUPPORTED)
    return f"uvicorn>={low},<{high}"


def check(version: str) -> None:
    """Raise ``UnsupportedUvicorn`` unless ``version`` (uvicorn's ``__version__``) is in
    ``SUPPORTED``. A version that cannot be read (no ``major.minor``) is unsupported."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    parsed = None if match is None else tuple(int(p or 0) for p in match.groups())
    if parsed is None or not SUPPORTED[0] <= parsed < SUPPORTED[1]:
        raise UnsupportedUvicorn(
            f"zcio_uvicorn supports {describe()} (the releases whose own HTTP protocol tests "
            f"pass against it), but uvicorn {version} is installed: "
            f"pip install 'zcio[uvicorn]' installs a supported one"
        )
