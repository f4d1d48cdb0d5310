"""Putting zcio_hypercorn's classes and functions in hypercorn's place, and taking them out.

hypercorn has no setting for its protocol or server classes: it looks them up by module-global
name when it uses them (``hypercorn.protocol.H11Protocol`` in ``ProtocolWrapper``,
``TCPServer`` in ``hypercorn.asyncio.run`` and ``hypercorn.trio.run``, the worker functions in
``hypercorn.run.run``), as its own tests rebind ``HTTPStream``. :func:`install` rebinds those
names, and the same names in the modules that define them (so code that imports them from
there, hypercorn's tests included, gets zcio_hypercorn's too).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import Any

from ._original import ORIGINALS

__all__ = ["install", "installed", "uninstall"]

_lock = threading.Lock()


def _replacements() -> list[tuple[str, str, Any]]:
    """(module, name, zcio_hypercorn's object) for every name install() rebinds."""
    from . import _asyncio, _h11, _workers

    table: list[tuple[str, str, Any]] = [
        ("hypercorn.protocol", "H11Protocol", _h11.H11Protocol),
        ("hypercorn.protocol.h11", "H11Protocol", _h11.H11Protocol),
        ("hypercorn.asyncio.tcp_server", "TCPServer", _asyncio.TCPServer),
        ("hypercorn.asyncio.run", "TCPServer", _asyncio.TCPServer),
        ("hypercorn.asyncio.run", "worker_serve", _workers.asyncio_worker_serve),
        ("hypercorn.asyncio", "worker_serve", _workers.asyncio_worker_serve),
        ("hypercorn.asyncio.run", "asyncio_worker", _workers.asyncio_worker),
        ("hypercorn.asyncio.run", "uvloop_worker", _workers.uvloop_worker),
    ]
    if importlib.util.find_spec("trio") is not None:
        from . import _trio

        table += [
            ("hypercorn.trio.tcp_server", "TCPServer", _trio.TCPServer),
            ("hypercorn.trio.run", "TCPServer", _trio.TCPServer),
            ("hypercorn.trio.run", "worker_serve", _workers.trio_worker_serve),
            ("hypercorn.trio", "worker_serve", _workers.trio_worker_serve),
            ("hypercorn.trio.run", "trio_worker", _workers.trio_worker),
        ]
    return table


def install() -> None:
    """Serve the ASGI file extensions on hypercorn's HTTP/1.1 connections in this process.

    After it, hypercorn's asyncio, uvloop and trio workers (``hypercorn.run.run``, its
    command line, ``hypercorn.asyncio.serve`` and ``hypercorn.trio.serve``, called before or
    after) use zcio_hypercorn's h11 protocol and TCP servers, and ``--workers N`` processes
    install it in themselves. Idempotent and thread-safe; :func:`uninstall` undoes it. The
    trio worker is covered when trio is installed. Raises ``ImportError`` only if hypercorn's
    modules cannot be imported.
    """
    with _lock:
        for module_name, name, replacement in _replacements():
            module = importlib.import_module(module_name)
            current = getattr(module, name)
            if current is not replacement:
                ORIGINALS.setdefault((module_name, name), current)
                setattr(module, name, replacement)


def uninstall() -> None:
    """Put hypercorn's own objects back (servers already running keep what they use)."""
    with _lock:
        for (module_name, name), stock in ORIGINALS.items():
            setattr(importlib.import_module(module_name), name, stock)
        ORIGINALS.clear()


def installed() -> bool:
    """Whether :func:`install` is in effect in this process."""
    import hypercorn.protocol

    from ._h11 import H11Protocol

    return getattr(hypercorn.protocol, "H11Protocol", None) is H11Protocol
