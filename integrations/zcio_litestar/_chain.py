"""May a file message reach the server? The table of Litestar's offenders, and the decision.

A function of the scope and of the ``send`` callable the response was given: no I/O, no
awaiting. The scope says what the server advertises; ``send`` says what wraps it, because a
middleware that wraps ``send`` passes the server's scope through unchanged, extensions included
(:class:`zcio.asgi.SendChainChecker` follows the chain).

Litestar's own middlewares that need the body bytes, or act on ``http.response.body`` messages
only, are the offenders (the table below): behind one of them the response is Litestar's own,
byte for byte. Other wrappers (CORS, CSRF, sessions, rate limits, ``before_send`` hooks, your
own header-adding middleware) only look at ``http.response.start`` and pass every other
message on, and are trusted to, as Starlette trusts them with ``pathsend``; an app with a
body-rewriting middleware of its own hides the extensions with
:class:`zcio_litestar.NoZeroCopyMiddleware`.
"""

from __future__ import annotations

from zcio.asgi import Offender, SendChainChecker

__all__ = ["why_not"]

# The table. An entry is a middleware as released today; if one learns the messages, its entry
# only costs that middleware zero-copy, never correctness.
OFFENDERS = (
    Offender(
        "litestar.middleware.compression.middleware",
        "CompressionMiddleware.create_compression_send_wrapper.<locals>.",
        "litestar's CompressionMiddleware compresses http.response.body messages and drops"
        " any other",
    ),
    Offender(
        "litestar.middleware.response_cache",
        "ResponseCacheMiddleware.__call__.<locals>.",
        "litestar's ResponseCacheMiddleware stores the http.response.body messages",
    ),
    Offender(
        "litestar.middleware.logging",
        "LoggingMiddleware.create_send_wrapper.<locals>.",
        "litestar's LoggingMiddleware logs the response when it sees http.response.body",
    ),
    Offender(
        "litestar.plugins.prometheus.middleware",
        "PrometheusMiddleware._get_wrapped_send.<locals>.",
        "litestar's PrometheusMiddleware times the response by its http.response.body messages",
    ),
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
)

#: Why a response called with ``scope`` and ``send`` must not send ``extension``'s message;
#: ``None`` when it may. Never raises; never awaits.
why_not = SendChainChecker(OFFENDERS).why_not
