"""Django's own tests for ASGI, responses and static files, from the sdist of the installed
Django, run with its runtests.py and zcio_django's handlers swapped in
(tests/django_upstream/zcio_swap.py). The same modules pass on stock Django.

The sdist is fetched once (tests/_upstream.py, about 11 MB); without network the test is
skipped with the reason, never failed. Some of Django's ASGI tests time themselves (one sleeps
0.1 s and expects silence): a test that fails in the whole run is retried once alone, both
results printed, and only one that fails twice fails this test. About 25 s on the 2-core
development machine, most of it the asgi module's own timeouts.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from _upstream import run_suite, sdist, unittest_failures

pytest.importorskip("django")

MODULES = ("asgi", "responses", "staticfiles_tests")


@pytest.mark.timeout(420)  # a pip download, then Django's runner in a subprocess (timeout=300)
def test_django_suites_pass_with_zcio_django() -> None:
    tree = sdist("django")
    swap = Path(__file__).parent / "django_upstream"
    env = dict(os.environ, PYTHONPATH=str(swap))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    runner = [sys.executable, str(swap / "zcio_swap.py")]
    run = run_suite(
        [*runner, *MODULES, "--parallel=1", "--noinput"],
        cwd=tree / "tests",
        env=env,
        timeout=300,
        failures=unittest_failures,
        alone=lambda test: [*runner, test, "--parallel=1", "--noinput"],
    )
    assert run.passed, run.report()
    out = run.output
    ran = re.search(r"Ran (\d+) tests?", out)
    assert ran is not None and int(ran.group(1)) > 200, out[-2000:]
    if run.first.returncode == 0:
        assert re.search(r"^OK\b", out, re.MULTILINE), out[-2000:]
    # The swap was in force: Django's ASGI tests sent their file bodies through zcio_django.
    ways = re.search(r"zcio_django ways: (\{.*\})", out)
    assert ways is not None and "'chunks'" in ways.group(1), out[-2000:]
