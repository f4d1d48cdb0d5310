"""CPython's ``test.test_asyncio.test_sendfile`` for the running interpreter, on zcio_uvloop.

Run as a script (in its own process: the suite sets and resets asyncio's policy). It runs the
suite's ``SendfileTestsBase`` on :class:`zcio_uvloop.Loop`, the way CPython runs it on each of
its own loops, and prints one JSON object: each test's outcome and the change in
``zcio.stats()`` over the run.
"""

from __future__ import annotations

import json
import sys
import unittest
from typing import Any

import zcio
import zcio_uvloop


def main() -> None:
    try:
        from test.test_asyncio import (  # type: ignore[import-not-found]
            test_sendfile,
            utils as test_utils,
        )
    except ImportError as exc:
        print(json.dumps({"missing": str(exc)}))
        return

    class ZcioUvloopTests(test_sendfile.SendfileTestsBase, test_utils.TestCase):  # type: ignore[misc]
        def create_event_loop(self) -> zcio_uvloop.Loop:
            return zcio_uvloop.new_event_loop()

        @staticmethod
        def close_loop(loop: Any) -> None:
            # test_utils.TestCase.close_loop reads the default loop's private _default_executor.
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    outcomes: dict[str, str] = {}

    class Result(unittest.TextTestResult):
        def addSuccess(self, test: Any) -> None:
            outcomes[test._testMethodName] = "passed"
            super().addSuccess(test)

        def addFailure(self, test: Any, err: Any) -> None:
            outcomes[test._testMethodName] = "failed"
            super().addFailure(test, err)

        def addError(self, test: Any, err: Any) -> None:
            outcomes[test._testMethodName] = "error"
            super().addError(test, err)

        def addSkip(self, test: Any, reason: str) -> None:
            outcomes[test._testMethodName] = "skipped"
            super().addSkip(test, reason)

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(ZcioUvloopTests)
    before = zcio.stats()
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=Result)  # type: ignore[arg-type]
    runner.run(suite)
    delta = zcio.stats() - before
    print(
        json.dumps(
            {
                "outcomes": outcomes,
                "sendfile_bytes": delta.bytes("sendfile"),
                "userspace_bytes": delta.bytes("userspace"),
            }
        )
    )


if __name__ == "__main__":
    main()
