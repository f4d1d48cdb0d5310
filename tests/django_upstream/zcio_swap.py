"""Run Django's own runtests.py with zcio_django's handlers in place of Django's.

``python zcio_swap.py [runtests.py arguments]`` from the sdist's tests/ folder. Django's names
are rebound before any test module imports them (``from django.core.handlers.asgi import
ASGIHandler`` in a test then gets zcio_django's); at exit the ways zcio_django chose are
printed, so a caller can tell that the swap was in force.
"""

from __future__ import annotations

import atexit
import collections
import os
import runpy
import sys
from typing import Any

import django.contrib.staticfiles.handlers as static_handlers
import django.core.asgi as core_asgi
import django.core.handlers.asgi as asgi_handlers

import zcio_django
import zcio_django._handler as zcio_handler

asgi_handlers.ASGIHandler = zcio_django.ASGIHandler  # type: ignore[misc]
core_asgi.ASGIHandler = zcio_django.ASGIHandler  # type: ignore[attr-defined]
static_handlers.ASGIStaticFilesHandler = zcio_django.ASGIStaticFilesHandler  # type: ignore[misc]

ways: collections.Counter[str] = collections.Counter()
_choose = zcio_django.choose


def counted(scope: dict[str, Any], body: Any) -> zcio_django.Way:
    way = _choose(scope, body)
    ways[way.value] += 1
    return way


zcio_handler.choose = counted  # type: ignore[attr-defined]
atexit.register(lambda: print(f"zcio_django ways: {dict(ways)}", file=sys.stderr))

sys.argv = ["runtests.py", *sys.argv[1:]]
sys.path.insert(0, os.getcwd())  # as when runtests.py is run as a script from here
runpy.run_path("runtests.py", run_name="__main__")
