"""Sanic's own file and static tests, from the sdist of the installed Sanic, run with
zcio_sanic's ``file``/``file_stream`` and ``install()`` in effect
(tests/sanic_upstream/zcio_sanic_plugin.py swaps them in): ``tests/test_response_file.py``,
``tests/test_static.py``, ``tests/test_static_directory.py`` and the file tests of
``tests/test_response.py`` (those with "file" in their names: 38 of its 61).

The sdist is fetched once (tests/_upstream.py); without network the test is skipped with the
reason, never failed. The tree is copied once into a folder named ``sanic``: five of Sanic's
static tests run only from there (they skip otherwise, on stock Sanic too). A test that fails in
the whole run is retried once alone, both results printed; only one that fails twice fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from _upstream import pytest_failures, run_suite, sdist

FILES = (
    "tests/test_response_file.py",
    "tests/test_static.py",
    "tests/test_static_directory.py",
    "tests/test_response.py",
)


@pytest.mark.timeout(420)  # one pip download and a subprocess of its own (timeout=300)
def test_sanic_file_suites_pass_with_zcio_sanic(tmp_path: Path) -> None:
    tree = sdist("sanic")
    assert (tree / FILES[1]).is_file(), f"no tests in {tree}"
    # Sanic's tests for relative paths run only from a working directory named "sanic".
    cwd = tree.parent / f"{tree.name}-cwd" / "sanic"
    if not cwd.is_dir():
        shutil.copytree(tree, cwd.with_name("sanic.partial"), dirs_exist_ok=True)
        cwd.with_name("sanic.partial").rename(cwd)
    stats = tmp_path / "stats.json"
    env = dict(
        os.environ,
        PYTHONPATH=str(Path(__file__).parent / "sanic_upstream"),
        ZCIO_SANIC_STATS=str(stats),
    )
    options = [
        *("-p", "zcio_sanic_plugin", "-p", "no:cacheprovider", "-o", "addopts=-rfEs"),
        *("-W", "ignore::DeprecationWarning"),
        # All of the first three files; of test_response.py, the file tests.
        *("-k", "not test_response.py or file"),
    ]
    run = run_suite(
        [sys.executable, "-m", "pytest", *FILES, "-q", *options],
        cwd=cwd,
        env=env,
        timeout=300,
        failures=pytest_failures,
        alone=lambda test: [sys.executable, "-m", "pytest", test, "-q", *options],
    )
    assert run.passed, run.report()
    summary = run.first.stdout.strip().splitlines()[-1] if run.first.stdout.strip() else ""
    assert " passed" in summary, run.report()
    # The one skip left is Sanic's own, for Windows.
    skipped = [line for line in run.first.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all("Windows only" in line for line in skipped), skipped
    if run.first.returncode == 0:  # (a retried run wrote the retry's counters)
        moved = json.loads(stats.read_text())
        assert moved["transfers"] > 100 and moved["bytes"] > 0, moved
