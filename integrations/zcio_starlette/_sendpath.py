"""Can an ``http.response.zerocopysend`` message reach a server that implements it?

Everything that decides it lives here: the scope must advertise the extension, and no
middleware that would lose the message may sit between the response and the server. No I/O,
no awaiting: a function of the scope and of the ``send`` callable the response was given.

Why ``send`` and not the scope: middleware that wraps ``send`` passes the server's scope
through unchanged, extensions included. Starlette's ``GZipMiddleware`` forwards only the
messages it knows (``http.response.body`` and ``http.response.pathsend``) and silently drops any
other, and ``BaseHTTPMiddleware`` asserts that every body message is one of those two. Starlette
had to teach both about ``pathsend``; they have not been taught ``zerocopysend``. So the
``send`` chain is followed, through closures, bound methods and ``functools.partial``, from
the response towards the server, and a response falls back to Starlette's own path when a
known offender is found on it. Wrappers that are not known offenders are trusted to pass
unknown messages on, as Starlette already trusts them with ``pathsend``; an app with a
body-rewriting middleware of its own hides the extensions with
:class:`zcio_starlette.NoZeroCopyMiddleware`. The walk ends at a bound ``send`` of a server's
request cycle (uvicorn's or zcio_uvicorn's, :data:`SERVER_MODULES`): nothing past it is a
middleware. It runs for every file response, so whether a function or a class is an offender
is decided once per code object or class and remembered.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.middleware.gzip import IdentityResponder
from starlette.types import Scope, Send

__all__ = ["PATHSEND", "ZEROCOPYSEND", "why_not_zerocopy"]

ZEROCOPYSEND = "http.response.zerocopysend"
PATHSEND = "http.response.pathsend"

# Far more hops than any real stack (a Starlette app with five middlewares is about ten); past
# this the chain is not understood, and not understood means not trusted.
_MAX_NODES = 256


@dataclass(frozen=True)
class _Offender:
    """A wrapper of ``send`` that loses or rejects ``http.response.zerocopysend``."""

    reason: str
    instance_of: type | None = None  # the owner of a bound method / a callable object
    function_in: tuple[str, str] | None = None  # (module, qualname prefix) of a function


# The table. An entry is a middleware as released today; if one learns the message, its entry
# only costs that middleware zero-copy, never correctness.
OFFENDERS: tuple[_Offender, ...] = (
    _Offender(
        reason=(
            "starlette.middleware.gzip.GZipMiddleware wraps send and drops messages it does not"
            " know (it passes on only http.response.body and http.response.pathsend)"
        ),
        instance_of=IdentityResponder,  # GZipResponder too: the responder for every request
    ),
    _Offender(
        reason=(
            "starlette.middleware.base.BaseHTTPMiddleware wraps send and accepts only"
            " http.response.body and http.response.pathsend"
        ),
        function_in=("starlette.middleware.base", "BaseHTTPMiddleware.__call__.<locals>."),
    ),
)


def why_not_zerocopy(scope: Scope, send: Send) -> str | None:
    """Why a response called with ``scope`` and ``send`` must not send
    ``http.response.zerocopysend``; ``None`` when it may.

    It may when the scope is HTTP, the server advertises the extension in
    ``scope["extensions"]``, and none of the middlewares known to lose the message wraps
    ``send`` (see the module's docstring). Never raises; never awaits.
    """
    if scope.get("type") != "http":
        return "not an HTTP request"
    if ZEROCOPYSEND not in (scope.get("extensions") or {}):
        return f"the server does not advertise {ZEROCOPYSEND}"
    return _offender_on(send)


def _offender_on(send: Callable[..., Any]) -> str | None:
    """The reason of the first offender on the chain of wrappers behind ``send``, if any.

    Runs for every file response, so each step is one type test and dict lookups: whether a
    function or a class is an offender is decided once per code object or class."""
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


# Verdicts per code object and per class: None, or the offender's reason. Both live as long as
# the app that made them in practice; the bound only matters for code generated on the fly.
_V = TypeVar("_V")
_verdicts: dict[object, str | None] = {}
_servers: dict[type, bool] = {}
_MAX_VERDICTS = 4096
#: The modules of the servers' request cycles (see ``_is_server``).
SERVER_MODULES = ("uvicorn.protocols.", "zcio_uvicorn.")


def _function_verdict(function: types.FunctionType) -> str | None:
    code = function.__code__
    try:
        return _verdicts[code]
    except KeyError:
        pass
    reason = None
    for offender in OFFENDERS:
        if offender.function_in is not None:
            module, prefix = offender.function_in
            if function.__module__ == module and function.__qualname__.startswith(prefix):
                reason = offender.reason
                break
    return _remember(_verdicts, code, reason)


def _class_verdict(cls: type) -> str | None:
    try:
        return _verdicts[cls]
    except KeyError:
        pass
    reason = None
    for offender in OFFENDERS:
        if offender.instance_of is not None and issubclass(cls, offender.instance_of):
            reason = offender.reason
            break
    return _remember(_verdicts, cls, reason)


def _is_server(cls: type) -> bool:
    """Whether ``cls`` is a server's request cycle, whose bound ``send`` is the end of the
    chain: uvicorn's and zcio_uvicorn's (nothing it refers to is a middleware)."""
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
