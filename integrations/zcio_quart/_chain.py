"""May a file message reach the server? The table of offenders Quart apps meet, and the decision.

A function of the scope and of the ``send`` callable the response is sent through: no I/O, no
awaiting. The scope says what the server advertises; ``send`` says what wraps it, because an
ASGI middleware around ``app.asgi_app`` passes the server's scope through unchanged, extensions
included (:class:`zcio.asgi.SendChainChecker` follows the chain).

Quart's own ways of changing a body (``after_request`` functions, ``make_conditional``,
quart-compress) replace the response's body object, which this integration sees: they need no
entry here. The entries are ASGI middlewares that rewrite or drop body messages.
"""

from __future__ import annotations

from zcio.asgi import SERVER_MODULES, Offender, SendChainChecker

__all__ = ["why_not"]

OFFENDERS = (
    Offender(
        "starlette.middleware.gzip",
        "IdentityResponder",  # GZipResponder too: the responder for every request
        "starlette's GZipMiddleware drops messages it does not know",
    ),
    Offender(
        "starlette.middleware.base",
        "BaseHTTPMiddleware.__call__.<locals>.",
        "starlette's BaseHTTPMiddleware accepts only http.response.body and pathsend",
    ),
    Offender(
        "asgi_gzip.gzip",
        "IdentityResponder",  # asgi-gzip, Starlette's GZipMiddleware on its own: the same
        "asgi-gzip's GZipMiddleware drops messages it does not know",
    ),
)

#: Why a body sent with ``scope`` through ``send`` must not go by ``extension``'s message;
#: ``None`` when it may. Never raises; never awaits. hypercorn's own ``send`` (and
#: zcio_hypercorn's) ends the chain, as uvicorn's does.
why_not = SendChainChecker(
    OFFENDERS, servers=(*SERVER_MODULES, "hypercorn.", "zcio_hypercorn.")
).why_not
