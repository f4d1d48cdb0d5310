"""hypercorn's own test suite, from the sdist of the installed hypercorn, run with
zcio_hypercorn installed (tests/hypercorn_upstream/zcio_hypercorn_plugin.py): its protocol,
asyncio, trio and end-to-end tests use zcio_hypercorn's h11 protocol and TCP servers.

None runs with zcio's advertising switched off: zcio_hypercorn offers the file extensions only
on a real plaintext socket, and the tests that assert a scope's ``extensions`` build their
connections on fake streams and send functions, where zcio_hypercorn is hypercorn exactly.

The tests that fail with zcio_hypercorn are run on stock hypercorn (without the plugin, in one
process): those that fail there too are hypercorn's own failures, expected on both (hypercorn
0.18 with h2 4.4: both ``test_http2_websocket``, an h2 protocol error). Any other is retried
once alone (tests/_upstream.py) and must pass then. The sdist is fetched once; without
network the test is skipped.
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
    stocks_own: list[str] = []

    def zcios_failures(output: str) -> list[str]:
        # The tests that failed with zcio_hypercorn, run on stock hypercorn in one process:
        # those that fail there too are hypercorn's own; only the others are retried.
        failed = pytest_failures(output)
        if failed:
            stock = subprocess.run(
                [sys.executable, "-m", "pytest", *OPTIONS, *failed],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            stocks_own.extend(pytest_failures(stock.stdout + stock.stderr))
            print(f"failed with zcio_hypercorn, on stock: {stock.stdout.strip()[-200:]}")
        return [test for test in failed if test not in stocks_own]

    run = run_suite(
        [*zcio, "tests"],
        cwd=tree,
        env=env,
        timeout=300,
        failures=zcios_failures,
        alone=lambda test: [*zcio, test],
    )
    summary = run.first.stdout.strip().splitlines()[-1] if run.first.stdout.strip() else ""
    assert " passed" in summary, run.report()
    if run.first.returncode != 0:
        assert run.failed or stocks_own, run.report()  # exit 1 with no test named: not tests
        retried = all(retry.returncode == 0 for retry in run.retries.values())
        assert len(run.retries) == len(run.failed) and retried, run.report()
    print(f"hypercorn suite with zcio_hypercorn: {summary}; stock's own failures: {stocks_own}")
