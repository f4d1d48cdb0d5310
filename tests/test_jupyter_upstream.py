"""jupyter_server's own ``tests/test_files.py`` (``/files/``, hidden files, downloads), from
the sdist of the installed jupyter_server, with the ``zcio_tornado.jupyter`` extension enabled
in every server it starts (tests/jupyter_upstream/zcio_jupyter_plugin.py). Every test must
pass, none skipped (stock jupyter_server 2.21.1: 20 passed); jupyter starts slowly, so the stock
run is not repeated here.

The sdist is fetched once (tests/_upstream.py); without network the test is skipped with the
reason, never failed. A test that fails in the whole run is retried once alone, both results
printed; only one that fails twice fails this test.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

from _upstream import WITHOUT_ASYNC_PLUGINS, pytest_failures, run_suite, sdist

pytest.importorskip("jupyter_server")
pytest.importorskip("pytest_jupyter")

PLUGIN = Path(__file__).parent / "jupyter_upstream"


def _run(tree: Path, *plugins: str) -> tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=str(PLUGIN))
    env.pop("ZCIO_DISABLE", None)
    options = [
        *(f"-p{p}" for p in ("jupyter_server.pytest_plugin", *plugins)),
        *("-p", "no:cacheprovider", "-p", "no:xdist", "-o", "addopts=-rfEs"),
        *WITHOUT_ASYNC_PLUGINS,
    ]
    command = [sys.executable, "-m", "pytest", "-q", *options]
    run = run_suite(
        [*command, "tests/test_files.py"],
        cwd=tree,
        env=env,
        timeout=300,
        failures=pytest_failures,
        alone=lambda test: [*command, test],
    )
    assert run.passed, run.report()
    summary = re.search(r"^(\d+ passed.*) in [\d.]+s", run.first.stdout, re.MULTILINE)
    assert summary, run.report()
    return summary[1], run.first.stdout


@pytest.mark.timeout(420)  # one pip download and a run of its own (timeout=300)
def test_jupyter_server_files_tests_pass_with_the_extension() -> None:
    tree = sdist("jupyter_server")
    assert (tree / "tests" / "test_files.py").is_file(), f"no tests in {tree}"
    ours, output = _run(tree, "zcio_jupyter_plugin")
    print(f"jupyter_server tests/test_files.py with zcio_tornado.jupyter: {ours}")
    assert re.fullmatch(r"\d+ passed", ours) and int(ours.split()[0]) >= 20, ours
    said = re.search(r"^ZCIO_TORNADO (.*)$", output, re.MULTILINE)
    assert said, output[-2000:]
    counters = json.loads(said[1])
    # Every /files/ download the tests made went by sendfile, none Tornado's way.
    assert counters["installed"] is True
    assert counters["counts"].get("sendfile", 0) >= 5 and "thread" not in counters["counts"]
    assert counters["bytes"].get("sendfile", 0) > 0
