"""Tornado's own tests (they ship inside the installed package: no sdist needed) with
``zcio_tornado.install()`` in effect, against the same tests on stock Tornado.

tests/tornado_upstream/runner.py installs, runs ``tornado.test.runtests`` (which fails a test
that logs unexpectedly) and prints zcio's counters at exit. ``web_test`` holds Tornado's
static-file tests (StaticFileTest, CustomStaticFileTest, ranges, HEAD, 304, GzipTestCase).
A test that fails in the whole run is retried once alone, both results printed; only one
that fails twice fails this test.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from _upstream import run_suite, unittest_failures

pytest.importorskip("tornado")

RUNNER = Path(__file__).parent / "tornado_upstream" / "runner.py"
MODULES = ("tornado.test.web_test",)


def _run(*flags: str) -> tuple[str, dict[str, object]]:
    command = [sys.executable, str(RUNNER), *flags]
    run = run_suite(
        [*command, *MODULES],
        cwd=RUNNER.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(RUNNER.parent)},
        timeout=240,
        failures=unittest_failures,
        alone=lambda test: [*command, test],
    )
    assert run.passed, run.report()
    ran = re.search(r"^Ran (\d+) tests?", run.output, re.MULTILINE)
    outcome = re.search(r"^(OK.*|FAILED.*)$", run.output, re.MULTILINE)
    said = re.search(r"^ZCIO_TORNADO (.*)$", run.output, re.MULTILINE)
    assert ran and outcome and said, run.report()
    print(f"{' '.join(flags) or 'zcio'}: Ran {ran[1]} tests, {outcome[1]}")
    return f"{ran[1]} {outcome[1]}", json.loads(said[1])


def test_tornado_suite_passes_with_install_as_on_stock() -> None:
    stock, stock_said = _run("--stock")
    ours, said = _run()
    assert ours == stock  # as many tests, as many skips
    assert stock_said["installed"] is False and said["installed"] is True
    counts = said["counts"]
    assert isinstance(counts, dict)
    sent = said["bytes"]
    assert isinstance(sent, dict)
    # Tornado's static-file tests fetched their files by sendfile; the gzip test went Tornado's
    # way (reads in a thread) and CustomStaticFileTest (its own get_content) stock.
    assert counts.get("sendfile", 0) >= 20, said
    assert counts.get("thread", 0) >= 1 and counts.get("stock", 0) >= 1, said
    assert sent.get("sendfile", 0) > 0 and set(sent) == {"sendfile"}, said
