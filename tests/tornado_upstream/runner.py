"""Run Tornado's own tests (``tornado.test.runtests``) with :func:`zcio_tornado.install` in
effect, or stock with ``--stock``; print zcio's counters at exit on one line starting with
``ZCIO_TORNADO`` (JSON), so the caller can tell how the static files went.

    python tests/tornado_upstream/runner.py [--stock] tornado.test.web_test [...]
"""

from __future__ import annotations

import atexit
import json
import sys

import zcio
import zcio_tornado


def _report() -> None:
    stats = zcio.stats()
    said = {
        "installed": zcio_tornado.installed(),
        "counts": zcio_tornado.counts(),
        "bytes": {name: row.bytes for name, row in stats.methods.items() if row.bytes},
    }
    print("ZCIO_TORNADO " + json.dumps(said), file=sys.stderr, flush=True)


def main() -> None:
    args = sys.argv[1:]
    if "--stock" in args:
        args.remove("--stock")
    else:
        zcio_tornado.install()
    atexit.register(_report)
    from tornado.test import runtests

    sys.argv = [sys.argv[0], *args]
    runtests.main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
