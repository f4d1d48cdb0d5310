"""The ``zcio`` command: ``serve``, ``proxy``, ``probe`` and ``bench``.

Each subcommand lives in its own module with a ``register(subparsers)`` that adds its parser
and the function that runs it. Heavy or optional imports (uvicorn, Starlette, trio) happen
inside those functions, so that ``zcio probe`` works with the core alone and a missing extra
is reported as one line (``pip install 'zcio[...]'``), never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import zcio

from . import _bench, _probe, _proxy, _serve
from ._errors import CliError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zcio",
        description="Zero-copy I/O for async Python on Linux: a file server, a TCP proxy, "
        "a probe of what the kernel offers, and the benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"zcio {zcio.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (_serve, _proxy, _probe, _bench):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zcio`` with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Mistakes a user will make (a port in use, a missing folder, a target that refuses
    connections, a missing extra) print one line on stderr and return a non-zero status.
    """
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except CliError as exc:
        print(f"zcio {args.command}: error: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    return status
