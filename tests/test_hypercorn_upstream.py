"""hypercorn's own test suite, from the sdist of the installed hypercorn, run with
zcio_hypercorn installed (tests/hypercorn_upstream/zcio_hypercorn_plugin.py): its protocol,
asyncio, trio and end-to-end tests use zcio_hypercorn's h11 protocol and TCP servers.

None runs with zcio's advertising switched off: zcio_hypercorn offers the file extensions only
on a real plaintext socket, and the tests that assert a scope's ``extensions`` build their
connections on fake streams and send functions, where zcio_hypercorn is hypercorn exactly.

A test that fails in the whole run is retried once alone (tests/_upstream.py); one that still
fails must fail on stock hypercorn too (alone, without the plugin): that is hypercorn's own
failure, not zcio's (hypercorn 0.18 with h2 4.4: both ``test_http2_websocket``, an h2
protocol error). The sdist is fetched once; without network the test is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _upstream import pytest_failures, run_suite, sdist

OPTIONS = ("-q", "-p", "no:cacheprovider", "-o", "addopts=-rfEs")
PLUGIN = ("-p", "zcio_hypercorn_plugin")


@pytest.mark.timeout(420)  # one pip download and subprocesses of their own
def test_hypercorn_suite_passes_with_zcio_hypercorn_as_on_stock() -> None:
    pytest.importorskip("pytest_asyncio")
    pytest.importorskip("pytest_trio")
    tree = sdist("hypercorn")
    assert (tree / "tests" / "protocol" / "test_h11.py").is_file(), f"no tests in {tree}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent / "hypercorn_upstream"))
    zcio = [sys.executable, "-m", "pytest", *OPTIONS, *PLUGIN]
    run = run_suite(
        [*zcio, "tests"],
        cwd=tree,
        env=env,
        timeout=300,
        failures=pytest_failures,
        alone=lambda test: [*zcio, test],
    )
    summary = run.first.stdout.strip().splitlines()[-1] if run.first.stdout.strip() else ""
    assert " passed" in summary, run.report()
    if run.first.returncode != 0:
        assert run.failed, run.report()  # failed without naming a test: not a test failure
    still = [test for test in run.failed if test not in run.retries or run.retries[test].returncode]
    stock_passes = []
    for test in still:
        stock = subprocess.run(
            [sys.executable, "-m", "pytest", *OPTIONS, test],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(f"{test} on stock hypercorn: exit {stock.returncode}")
        if stock.returncode == 0:
            stock_passes.append(test)
    assert not stock_passes, (
        f"fail with zcio_hypercorn, pass on stock: {stock_passes}\n{run.report()}"
    )
    print(f"hypercorn suite with zcio_hypercorn: {summary}; stock's own failures: {still}")
