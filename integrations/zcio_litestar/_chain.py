"""May a file message reach the server? Everything that decides it lives here.

A function of the scope and of the ``send`` callable the response was given: no I/O, no
awaiting. The scope says what the server advertises; ``send`` says what wraps it, because a
middleware that wraps ``send`` passes the server's scope through unchanged, extensions included.

Litestar's own middlewares that need the body bytes, or act on ``http.response.body`` messages
only, are the offenders (the table below): behind one of them the response is Litestar's own,
byte for byte. Other wrappers (CORS, CSRF, sessions, rate limits, ``before_send`` hooks, your
own header-adding middleware) only look at ``http.response.start`` and pass every other
message on, and are trusted to, as Starlette trusts them with ``pathsend``; an app with a
body-rewriting middleware of its own hides the extensions with
:class:`zcio_litestar.NoZeroCopyMiddleware`.

The chain of wrappers is followed from the response towards the server through closures,
bound methods, ``functools.partial``, ``__wrapped__`` and ``send`` attributes of wrapper objects.
It ends at a bound ``send`` of a server's request cycle (uvicorn's or zcio_uvicorn's): nothing
past it is a middleware. Whether a function or a class is an offender is decided once per code
object or class and remembered, since it runs for every file response.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["PATHSEND", "ZEROCOPYSEND", "why_not"]

ZEROCOPYSEND = "http.response.zerocopysend"
PATHSEND = "http.response.pathsend"

# Far more hops than any real stack (Litestar with five middlewares is about fifteen); past
# this the chain is not understood, and not understood means not trusted.
_MAX_NODES = 256


@dataclass(frozen=True)
class _Offender:
    """A wrapper of ``send`` that would lose, reject or misreport a file message. Matched by
    module and qualified-name prefix, so that no offender's package has to be imported."""

    module: str
    prefix: str  # of the function's __qualname__, or the class's
    reason: str


# The table. An entry is a middleware as released today; if one learns the messages, its entry
# only costs that middleware zero-copy, never correctness.
OFFENDERS: tuple[_Offender, ...] = (
    _Offender(
        "litestar.middleware.compression.middleware",
        "CompressionMiddleware.create_compression_send_wrapper.<locals>.",
        "litestar's CompressionMiddleware compresses http.response.body messages and drops"
        " any other",
    ),
    _Offender(
        "litestar.middleware.response_cache",
        "ResponseCacheMiddleware.__call__.<locals>.",
        "litestar's ResponseCacheMiddleware stores the http.response.body messages",
    ),
    _Offender(
        "litestar.middleware.logging",
        "LoggingMiddleware.create_send_wrapper.<locals>.",
        "litestar's LoggingMiddleware logs the response when it sees http.response.body",
    ),
    _Offender(
        "litestar.plugins.prometheus.middleware",
        "PrometheusMiddleware._get_wrapped_send.<locals>.",
        "litestar's PrometheusMiddleware times the response by its http.response.body messages",
    ),
    _Offender(
        "starlette.middleware.gzip",
        "IdentityResponder",  # GZipResponder too: the responder for every request
        "starlette's GZipMiddleware drops messages it does not know",
    ),
    _Offender(
        "starlette.middleware.base",
        "BaseHTTPMiddleware.__call__.<locals>.",
        "starlette's BaseHTTPMiddleware accepts only http.response.body and pathsend",
    ),
)

#: The modules of the servers' request cycles: a bound ``send`` of theirs ends the chain.
SERVER_MODULES = ("uvicorn.protocols.", "zcio_uvicorn.")


def why_not(scope: Mapping[str, Any], send: Callable[..., Any], extension: str) -> str | None:
    """Why a response called with ``scope`` and ``send`` must not send ``extension``'s
    message; ``None`` when it may. Never raises; never awaits."""
    if scope.get("type") != "http":
        return "not an HTTP request"
    if extension not in (scope.get("extensions") or {}):
        return f"the server does not advertise {extension}"
    return _offender_on(send)


def _offender_on(send: Callable[..., Any]) -> str | None:
    """The reason of the first offender on the chain of wrappers behind ``send``, if any."""
    seen: set[int] = set()
    todo: list[Any] = [send]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > _MAX_NODES:
            return f"the chain of send wrappers is longer than {_MAX_NODES} steps"
        kind = type(node)
        if kind is types.FunctionType:
            reason = _function_verdict(node)
            if reason is not None:
                return reason
            for cell in node.__closure__ or ():
                try:
                    hop = cell.cell_contents
                except ValueError:  # an empty cell: a variable not bound yet
                    continue
                if callable(hop) and not isinstance(hop, type):
                    todo.append(hop)
            wrapped = getattr(node, "__wrapped__", None)
            if wrapped is not None:
                todo.append(wrapped)
        elif kind is types.MethodType:
            owner = node.__self__
            reason = _class_verdict(type(owner))
            if reason is not None:
                return reason
            if _is_server(type(owner)):
                continue  # the server's own send: the end of the chain
            todo.append(node.__func__)
            todo.extend(_send_attributes(owner))
        elif kind is functools.partial:
            todo.append(node.func)
            todo.extend(node.args)
            todo.extend(node.keywords.values())
        elif callable(node) and not isinstance(node, type | types.BuiltinFunctionType):
            reason = _class_verdict(kind)
            if reason is not None:
                return reason
            todo.extend(_send_attributes(node))
    return None


_V = TypeVar("_V")
_verdicts: dict[object, str | None] = {}
_servers: dict[type, bool] = {}
_MAX_VERDICTS = 4096


def _function_verdict(function: types.FunctionType) -> str | None:
    code = function.__code__
    try:
        return _verdicts[code]
    except KeyError:
        pass
    return _remember(_verdicts, code, _match(function.__module__, function.__qualname__))


def _class_verdict(cls: type) -> str | None:
    try:
        return _verdicts[cls]
    except KeyError:
        pass
    reason = None
    for base in cls.__mro__:
        reason = _match(base.__module__, base.__qualname__)
        if reason is not None:
            break
    return _remember(_verdicts, cls, reason)


def _match(module: str, qualname: str) -> str | None:
    for offender in OFFENDERS:
        if module == offender.module and qualname.startswith(offender.prefix):
            return offender.reason
    return None


def _is_server(cls: type) -> bool:
    try:
        return _servers[cls]
    except KeyError:
        return _remember(_servers, cls, cls.__module__.startswith(SERVER_MODULES))


def _remember(table: dict[Any, _V], key: object, value: _V) -> _V:
    if len(table) >= _MAX_VERDICTS:
        table.clear()
    table[key] = value
    return value


def _send_attributes(owner: Any) -> list[Any]:
    """An object's attributes named like a send callable (``send``, ``_send``, ``app_send``).

    Only those: an object's other attributes lead to the app it wraps (towards the response,
    not the server) or to unrelated parts of the app, where an offender is not on this path.
    """
    try:
        attributes = vars(owner)
    except TypeError:  # no __dict__ (slots, builtins)
        return []
    return [
        value
        for name, value in attributes.items()
        if "send" in name and callable(value) and not isinstance(value, type)
    ]
