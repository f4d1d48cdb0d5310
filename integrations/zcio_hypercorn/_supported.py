"""The hypercorn versions zcio_hypercorn is known to serve correctly, checked at import.

zcio_hypercorn subclasses hypercorn's h11 protocol, HTTP stream and TCP servers and relies on
their internals (the stream's state, the protocol's h11 connection, the servers' writer, stream
and send lock), which hypercorn may change in any release. ``SUPPORTED`` is the range whose own
test suite passes against zcio_hypercorn's classes (tests/test_hypercorn_upstream.py);
``pyproject.toml``'s ``hypercorn`` extra declares the same range.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

__all__ = ["SUPPORTED", "UnsupportedHypercorn", "check", "describe"]

# [lowest supported, first unsupported): the hypercorn releases tested, by (major, minor, patch).
SUPPORTED: tuple[tuple[int, int, int], tuple[int, int, int]] = ((0, 18, 0), (0, 19, 0))


class UnsupportedHypercorn(ImportError):
    """The installed hypercorn is outside the range zcio_hypercorn was tested against."""


def describe() -> str:
    """The supported range as a pip requirement, e.g. ``hypercorn>=0.18,<0.19``."""
    low, high = (".".join(map(str, v[: 3 if v[2] else 2])) for v in SUPPORTED)
    return f"hypercorn>={low},<{high}"


def check(installed: str | None = None) -> None:
    """Raise ``UnsupportedHypercorn`` unless hypercorn's version (the installed one unless
    given) is in ``SUPPORTED``; a version that cannot be read is unsupported."""
    if installed is None:
        try:
            installed = version("hypercorn")
        except PackageNotFoundError:
            installed = "unknown"
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", installed)
    parsed = None if match is None else tuple(int(p or 0) for p in match.groups())
    if parsed is None or not SUPPORTED[0] <= parsed < SUPPORTED[1]:
        raise UnsupportedHypercorn(
            f"zcio_hypercorn supports {describe()} (the releases whose own tests pass against "
            f"it), but hypercorn {installed} is installed: pip install 'zcio[hypercorn]' "
            "installs a supported one"
        )
