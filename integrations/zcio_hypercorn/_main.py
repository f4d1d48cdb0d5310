"""``zcio-hypercorn`` and ``python -m zcio_hypercorn``: hypercorn's command line, installed."""

from __future__ import annotations

import sys

from ._install import install

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run hypercorn's own ``main`` (the same options, config files and exit codes) with
    zcio_hypercorn installed, in this process and in every worker process it spawns."""
    install()
    from hypercorn.__main__ import main as hypercorn_main

    return hypercorn_main(sys.argv[1:] if argv is None else argv)
