"""uvicorn's own HTTP protocol test suite, from the sdist of the installed uvicorn, run against
zcio_uvicorn's protocols (tests/uvicorn_upstream/zcio_uvicorn_plugin.py swaps them in).

The sdist is fetched once (tests/_upstream.py); without network the test is skipped with the
reason, never failed. A test that fails in the whole run is retried once alone, both results
printed; only one that fails twice fails this test.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from _upstream import pytest_failures, run_suite, sdist


@pytest.mark.timeout(420)  # one pip download and a subprocess of its own (timeout=300)
def test_uvicorn_protocol_suite_passes_against_zcio_uvicorn() -> None:
    tree = sdist("uvicorn")
    # uvicorn's sdists ship their tests from 0.31.0 on; zcio_uvicorn's floor is such a release.
    assert (tree / "tests" / "protocols" / "test_http.py").is_file(), f"no tests in {tree}"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent / "uvicorn_upstream"))
    options = [
        *("-p", "zcio_uvicorn_plugin", "-p", "no:cacheprovider", "-o", "addopts=-rfEs"),
        # Upstream turns warnings into errors against the test tools it pinned; with the
        # floor's uvicorn (make test-lowest) today's websockets warns about its legacy API.
        # A deprecation in a test tool says nothing about the responses tested here.
        *("-W", "ignore::DeprecationWarning"),
    ]
    run = run_suite(
        [sys.executable, "-m", "pytest", "tests/protocols/test_http.py", "-q", *options],
        cwd=tree,
        env=env,
        timeout=300,
        failures=pytest_failures,
        alone=lambda test: [sys.executable, "-m", "pytest", test, "-q", *options],
    )
    assert run.passed, run.report()
    summary = run.first.stdout.strip().splitlines()[-1] if run.first.stdout.strip() else ""
    assert " passed" in summary, run.report()
    # Every skip is upstream's own: a protocol zcio does not wrap (zttp), or a case upstream
    # declares impossible for httptools. None may come from zcio's classes.
    allowed = ("zttp not installed", "httptools never upgrades with the keep-alive timer armed")
    skipped = [line for line in run.first.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(any(reason in line for reason in allowed) for line in skipped), skipped
