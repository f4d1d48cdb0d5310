"""uvloop with ``loop.sendfile`` and ``loop.sock_sendfile``: ``import zcio_uvloop as uvloop``.

uvloop's loop raises ``NotImplementedError`` for both, so aiohttp's static files and every
other caller fall back to reading the file in Python on uvloop. ``zcio_uvloop`` mirrors
uvloop's module surface (``Loop``, ``new_event_loop``, ``run``, ``EventLoopPolicy``,
``install``) with a ``Loop`` that subclasses ``uvloop.Loop`` and adds the two methods, with
asyncio's contracts, on zcio's ``send_file``. For uvicorn: ``--loop zcio_uvloop:new_event_loop``.
Uses only zcio's public API (through ``zcio_asyncio``).
"""

from ._loop import Loop as Loop
from ._run import (
    EventLoopPolicy as EventLoopPolicy,
    install as install,
    new_event_loop as new_event_loop,
    run as run,
)

__all__ = ["EventLoopPolicy", "Loop", "install", "new_event_loop", "run"]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("zcio_uvloop."):
        _obj.__module__ = "zcio_uvloop"
del _name, _obj
