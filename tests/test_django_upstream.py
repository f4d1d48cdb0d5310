"""Django's own tests for ASGI, responses and static files, from the sdist of the installed
Django, run with its runtests.py and zcio_django's handlers swapped in
(tests/django_upstream/zcio_swap.py). The same modules pass on stock Django.

The sdist is fetched from PyPI once into .venv/upstream/ (about 11 MB); without network the
test is skipped with the reason, never failed. About 25 s on the 2-core development machine,
most of it the asgi module's own timeouts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_uvicorn_upstream import sdist

pytest.importorskip("django")

MODULES = ("asgi", "responses", "staticfiles_tests")


def test_django_suites_pass_with_zcio_django() -> None:
    tree = sdist("django")
    swap = Path(__file__).parent / "django_upstream"
    env = dict(os.environ, PYTHONPATH=str(swap))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = subprocess.run(
        [sys.executable, str(swap / "zcio_swap.py"), *MODULES, "--parallel=1", "--noinput"],
        cwd=tree / "tests",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    ran = re.search(r"Ran (\d+) tests?", out)
    assert ran is not None and int(ran.group(1)) > 200, out[-2000:]
    assert re.search(r"^OK\b", out, re.MULTILINE), out[-2000:]
    # The swap was in force: Django's ASGI tests sent their file bodies through zcio_django.
    ways = re.search(r"zcio_django ways: (\{.*\})", out)
    assert ways is not None and "'chunks'" in ways.group(1), out[-2000:]
