"""tests/_upstream.py's retry: a test that fails once and passes alone is forgiven (and said);
one that fails twice fails the suite; many failures are never retried."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from _upstream import SuiteRun, pytest_failures, run_suite, unittest_failures

# A test that fails while a marker file exists, and removes it: fails in the whole run, passes
# when run again alone.
FLAKY = """
import os
def test_flaky():
    if os.path.exists("marker"):
        os.remove("marker")
        raise AssertionError("timing")
def test_broken():
    assert os.environ.get("BROKEN") != "1"
def test_fine():
    pass
"""


def _run(tmp_path: Path, broken: bool = False) -> SuiteRun:
    (tmp_path / "test_upstreamish.py").write_text(FLAKY)
    (tmp_path / "marker").write_text("")
    # No plugin autoloading: the venv's many pytest plugins would make each run seconds long.
    env = dict(os.environ, BROKEN="1" if broken else "0", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"]
    return run_suite(
        [*base, "test_upstreamish.py"],
        cwd=tmp_path,
        env=env,
        timeout=60,
        failures=pytest_failures,
        alone=lambda test: [*base, test],
    )


def test_a_test_that_passes_alone_is_forgiven_and_said(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="passed alone"):
        run = _run(tmp_path)
    assert run.first.returncode != 0
    assert run.failed == ["test_upstreamish.py::test_flaky"]
    assert run.passed


def test_a_test_that_fails_twice_fails_the_suite(tmp_path: Path) -> None:
    run = _run(tmp_path, broken=True)
    assert run.failed == ["test_upstreamish.py::test_flaky", "test_upstreamish.py::test_broken"]
    assert not run.passed
    assert "test_broken alone (exit 1)" in run.report()


def test_unittest_labels() -> None:
    out = (
        "ERROR: test_a (asgi.tests.ASGITest.test_a)\n"
        "FAIL: test_b (tornado.test.web_test.StaticFileTest)\n"
        "ERROR: setUpClass (x.tests.Case)\n"
    )
    assert unittest_failures(out) == [
        "asgi.tests.ASGITest.test_a",
        "tornado.test.web_test.StaticFileTest.test_b",
        "x.tests.Case",
    ]
