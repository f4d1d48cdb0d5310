"""Can an ``http.response.zerocopysend`` message reach a server that implements it?

The scope must advertise the extension, and no middleware that would lose the message may sit
between the response and the server (:class:`zcio.asgi.SendChainChecker` follows the ``send``
chain). Starlette's ``GZipMiddleware`` forwards only the messages it knows
(``http.response.body`` and ``http.response.pathsend``) and silently drops any other, and
``BaseHTTPMiddleware`` asserts that every body message is one of those two. Starlette had to
teach both about ``pathsend``; they have not been taught ``zerocopysend``. Behind either, a
response falls back to Starlette's own path; an app with a body-rewriting middleware of its
own hides the extensions with :class:`zcio_starlette.NoZeroCopyMiddleware`.
"""

from __future__ import annotations

from starlette.types import Scope, Send

from zcio.asgi import ZEROCOPYSEND, Offender, SendChainChecker

__all__ = ["why_not_zerocopy"]

# The table. An entry is a middleware as released today; if one learns the message, its entry
# only costs that middleware zero-copy, never correctness.
OFFENDERS = (
    Offender(
        "starlette.middleware.gzip",
        "IdentityResponder",  # GZipResponder too: the responder for every request
        "starlette.middleware.gzip.GZipMiddleware wraps send and drops messages it does not"
        " know (it passes on only http.response.body and http.response.pathsend)",
    ),
    Offender(
        "starlette.middleware.base",
        "BaseHTTPMiddleware.__call__.<locals>.",
        "starlette.middleware.base.BaseHTTPMiddleware wraps send and accepts only"
        " http.response.body and http.response.pathsend",
    ),
)

_CHECKER = SendChainChecker(OFFENDERS)


def why_not_zerocopy(scope: Scope, send: Send) -> str | None:
    """Why a response called with ``scope`` and ``send`` must not send
    ``http.response.zerocopysend``; ``None`` when it may.

    It may when the scope is HTTP, the server advertises the extension in
    ``scope["extensions"]``, and none of the middlewares known to lose the message wraps
    ``send`` (see the module's docstring). Never raises; never awaits.
    """
    return _CHECKER.why_not(scope, send, ZEROCOPYSEND)
