"""Limits on what one client may make a server hold: the request line, the header section (and
a chunked body's trailer), the time to send a request's head and the time between the pieces
of its body, the requests it may pipeline, how many connections are open at once, and how long
a response may go unread.

uvicorn's protocols take none of these from it: httptools' parser accumulates a request line or
a header of any length (with quadratic copying), and nothing closes a connection that never
finishes its head. These are checked here, as the bytes arrive, before any app runs.

uvicorn gives a protocol class no configuration of its own, so the limits are a class attribute
(:meth:`zcio_uvicorn.HttpToolsProtocol.configure` makes a subclass with others) whose default is
read from ``ZCIO_UVICORN_*`` environment variables when :mod:`zcio_uvicorn` is imported.

One :class:`Gate` per uvicorn server (it hangs on uvicorn's ``ServerState``) keeps the
connections that are waiting for a request's head, oldest first: it closes those whose head is
late (one timer for the whole server, set for the oldest deadline) and, when a new connection
would go over ``max_connections``, the one that has waited longest (as nginx reuses idle
keep-alive connections when it runs out of them), so a flood of idle or slow connections cannot
keep a prompt client out. It also keeps the connections waiting for the next piece of a
request's body (their own timer, and closed for a newcomer when none waits for a head).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import resource
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = [
    "ENVIRONMENT",
    "Gate",
    "Limits",
    "default_max_connections",
    "refusal",
    "set_send_timeout",
]

logger = logging.getLogger("uvicorn.error")

#: The environment variable for each field of :class:`Limits`.
ENVIRONMENT = {
    "max_request_line": "ZCIO_UVICORN_MAX_REQUEST_LINE",
    "max_header_bytes": "ZCIO_UVICORN_MAX_HEADER_BYTES",
    "max_headers": "ZCIO_UVICORN_MAX_HEADERS",
    "head_timeout": "ZCIO_UVICORN_HEAD_TIMEOUT",
    "max_connections": "ZCIO_UVICORN_MAX_CONNECTIONS",
    "send_timeout": "ZCIO_UVICORN_SEND_TIMEOUT",
    "body_timeout": "ZCIO_UVICORN_BODY_TIMEOUT",
    "max_pipelined": "ZCIO_UVICORN_MAX_PIPELINED",
}

#: Room for the method, the HTTP version and the line ends around the request target and the
#: header fields, when the whole head is bounded while it is still arriving.
HEAD_SLACK = 1024


def default_max_connections() -> int:
    """Half the open-file limit less 64, between 16 and 10,000: each connection may hold a file
    open too, and the server needs a few descriptors of its own. The cap exists so that the
    server never runs out of descriptors (then it could accept no one); set lower, it would
    make a crowd of idle connections churn (each newcomer closing one) while it could hold
    them all, which costs prompt clients more than the crowd does."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(16, min(10_000, (soft - 64) // 2))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may make the server hold. ``None`` turns a limit off.

    - ``max_request_line``: bytes of the request target (the URL in ``GET /url HTTP/1.1``);
      longer: ``414 URI Too Long``.
    - ``max_header_bytes``: bytes of the header fields, counted as ``name: value`` plus the
      line end (4 bytes a field); more: ``431 Request Header Fields Too Large``.
    - ``max_headers``: header fields in one request; more: 431.
    - ``head_timeout``: seconds a connection may take to send a request's whole head, counted
      from when the server is ready for it (the connection opened, or the previous response
      was written). Late: the connection is closed, with ``408 Request Timeout`` when part of a
      head had arrived (silently when nothing had, as for an idle keep-alive connection).
    - ``max_connections``: connections open at once. One more closes the connection that has
      waited longest for a request's head (idle or slow: 503 if part of a head had arrived);
      when every connection is busy with a request, the new one gets ``503 Service
      Unavailable`` and is closed. Default: :func:`default_max_connections`.
    - ``send_timeout``: seconds a response may make no progress because the client reads
      nothing (its receive window stays shut); then the kernel drops the connection
      (``TCP_USER_TIMEOUT``, as nginx's ``send_timeout``). An idle connection is not affected.
    - ``body_timeout``: seconds the server may wait for the next piece of a request's body (or
      of a chunked body's trailer), counted from the head, from the last piece, or from when
      the app asked for more (which is when a ``100 Continue`` goes out). Never while the
      server itself is not reading (the app has not taken what came). Late: ``408`` and closed
      when no response has started, else closed. Such a connection is also closed for a
      newcomer at ``max_connections`` when no connection is waiting for a head.
    - ``max_pipelined``: requests one connection may have queued behind the one being
      answered (pipelining). At the limit, the server stops reading that connection until the
      queue drains; what it already read and not yet parsed (one read, 256 KiB at most) waits.
      httptools is fed 4 KiB at a time (512 bytes while requests are queued), so the requests
      in the piece that reaches the limit are queued too (131 of 31 bytes at the most); h11
      parses one request ahead by itself.

    Trailer fields of a chunked body count against ``max_headers`` and ``max_header_bytes``
    (with the head's fields), and the bytes of an unfinished trailer against
    ``max_header_bytes``: over them, the connection is closed without an answer (the app may
    be answering already) and the app sees ``http.disconnect``.

    Refusals are answered with ``Connection: close`` before any app sees the request, and
    logged on uvicorn's logger (``uvicorn.error``): 414 and 431 as warnings, 408 at info, the
    cap at most once every 10 seconds as a warning with its counts.
    """

    max_request_line: int | None = 8192
    max_header_bytes: int | None = 32768
    max_headers: int | None = 100
    head_timeout: float | None = 10.0
    max_connections: int | None = field(default_factory=default_max_connections)
    send_timeout: float | None = 60.0
    body_timeout: float | None = 30.0
    max_pipelined: int | None = 16

    def __post_init__(self) -> None:
        for name in ENVIRONMENT:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive (or None for no limit), not {value!r}")

    @property
    def head_budget(self) -> int | None:
        """Bytes a head may take in all while it is arriving (its parts are checked exactly
        once they are complete): the request line and header limits, plus room for the method,
        version and line ends. None when either limit is off."""
        if self.max_request_line is None or self.max_header_bytes is None:
            return None
        return self.max_request_line + self.max_header_bytes + HEAD_SLACK

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, with each ``ZCIO_UVICORN_*`` variable that is set in its place
        (``0`` or ``off``: no limit). Raises ``ValueError`` naming a variable that is not a
        number."""
        environ = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for name, variable in ENVIRONMENT.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if text.lower() in ("0", "off", "none"):
                changes[name] = None
                continue
            convert: Callable[[str], Any] = float if name.endswith("timeout") else int
            try:
                value = convert(text)
            except ValueError:
                value = None
            if value is None or not value > 0:
                raise ValueError(f"{variable}={text!r}: a positive number, or 0 for no limit")
            changes[name] = value
        return cls(**changes)

    def environment(self) -> dict[str, str]:
        """These limits as ``ZCIO_UVICORN_*`` variables: what worker processes read back."""
        return {
            variable: "0" if getattr(self, name) is None else str(getattr(self, name))
            for name, variable in ENVIRONMENT.items()
        }

    def describe(self) -> str:
        """One line for the log: ``request line 8192 B, header 32768 B / 100 fields, ...``."""

        def show(value: float | None, unit: str) -> str:
            return "off" if value is None else f"{value:g}{unit}"

        return (
            f"request line {show(self.max_request_line, ' B')}, "
            f"header {show(self.max_header_bytes, ' B')} / {show(self.max_headers, ' fields')}, "
            f"head timeout {show(self.head_timeout, ' s')}, "
            f"connections {show(self.max_connections, '')}, "
            f"send timeout {show(self.send_timeout, ' s')}, "
            f"body timeout {show(self.body_timeout, ' s')}, "
            f"pipelined {show(self.max_pipelined, '')}"
        )

    def replace(self, **changes: Any) -> Limits:
        return dataclasses.replace(self, **changes)


def _who(protocol: Any) -> str:
    """``"1.2.3.4:5678 - "``, as uvicorn prefixes its connection messages."""
    client = protocol.client
    return f"{client[0]}:{client[1]} - " if client else ""


def set_send_timeout(transport: Any, seconds: float | None) -> None:
    """``TCP_USER_TIMEOUT`` on the connection's socket: the kernel drops a TCP connection whose
    sent bytes stay unacknowledged, or whose peer's receive window stays shut, that long. Not
    TCP (a UNIX socket), or a transport without a socket: nothing to do."""
    if seconds is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, ValueError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, max(1, int(seconds * 1000)))


def refusal(status: int, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole response with ``Connection: close``: the reason phrase as a plain-text body."""
    phrase = HTTPStatus(status).phrase.encode("ascii")
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
    lines += [name + b": " + value + b"\r\n" for name, value in default_headers]
    lines += [
        b"content-type: text/plain; charset=utf-8\r\n",
        b"content-length: %d\r\n" % len(phrase),
        b"connection: close\r\n\r\n",
        phrase,
    ]
    return b"".join(lines)


def close(protocol: Any, status: int | None) -> None:
    """Close ``protocol``'s connection, answering ``status`` first unless None. A client that
    does not read would hold a closing connection open with the answer unsent: such a
    connection is aborted instead."""
    transport = protocol.transport
    if transport is None or transport.is_closing():
        return
    if status is not None:
        transport.write(refusal(status, protocol.server_state.default_headers))
    buffered = getattr(transport, "get_write_buffer_size", lambda: 0)()
    if buffered:
        transport.abort()
    else:
        transport.close()


class Gate:
    """The connections of one server that are waiting for a request's head, oldest first.

    ``waiting`` maps a protocol to its deadline (``time.monotonic()``); it is ordered by
    deadline because every entry has the same timeout. Protocols call :meth:`admit` when a
    connection opens, :meth:`wait` when they become ready for a head, :meth:`done` when a head
    is complete, :meth:`body` when they wait for (more of) a body, :meth:`body_done` when it
    is complete, and :meth:`forget` when the connection is lost. ``bodies`` maps a protocol
    waiting for a body to when it began to wait, oldest first. A protocol answers
    ``_zcio_body_held()`` (the server, not the client, holds its body up) and
    ``_zcio_body_answer()`` (408, or None once a response has started).
    """

    WARN_EVERY = 10.0

    def __init__(self, limits: Limits, loop: Any) -> None:
        self.limits = limits
        self.loop = loop
        self.waiting: OrderedDict[Any, float] = OrderedDict()
        # protocol -> when it began to wait for the next piece of a body, oldest first
        self.bodies: OrderedDict[Any, float] = OrderedDict()
        self._body_sweep: Any = None
        self.closing: set[Any] = set()  # closed by the gate, not yet lost
        self._sweep: Any = None  # the timer for the oldest deadline
        self.evicted = 0
        self.refused = 0
        self.timed_out = 0
        self._warned_at = float("-inf")
        self.reporter: Any = None  # the server's Reporter, when it has one

    # -- connections -------------------------------------------------------------------------

    def admit(self, protocol: Any) -> bool:
        """Called once the connection is counted in the server's connections. Over the cap:
        close the connection that has waited longest for a head, else the one that has waited
        longest for a piece of a request's body, or, when none is waiting, refuse this one
        (503). False when this one was refused."""
        cap = self.limits.max_connections
        if cap is None or len(protocol.connections) - len(self.closing) <= cap:
            return True
        if self.waiting:
            oldest, _ = self.waiting.popitem(last=False)
            self.evicted += 1
            self._close(oldest, 503 if oldest._zcio_head_bytes else None)
            self._warn_cap(cap)
            return True
        stalled = self._stalled_body()
        if stalled is not None:
            del self.bodies[stalled]
            self.evicted += 1
            logger.info("%sclosed for a new connection while sending a body", _who(stalled))
            self._close(stalled, None)
            self._warn_cap(cap)
            return True
        self.refused += 1
        self._close(protocol, 503)
        self._warn_cap(cap)
        return False

    def _stalled_body(self) -> Any:
        """The connection that has waited longest for a piece of a body, leaving out those
        the server itself is not reading (their app has not taken what came)."""
        for count, protocol in enumerate(self.bodies):
            if count == self.BATCH:
                break
            if not protocol._zcio_body_held():
                return protocol
        return None

    def wait(self, protocol: Any) -> None:
        """``protocol`` is ready for a request's head: its clock starts now."""
        if protocol in self.closing:
            return
        timeout = self.limits.head_timeout
        if timeout is None:
            if self.limits.max_connections is not None:
                self.waiting[protocol] = float("inf")
                self.waiting.move_to_end(protocol)
            return
        deadline = time.monotonic() + timeout
        self.waiting[protocol] = deadline
        self.waiting.move_to_end(protocol)
        if self._sweep is None:
            self._schedule(deadline)

    def done(self, protocol: Any) -> None:
        """A head is complete: the connection is busy, neither timed nor evictable."""
        self.waiting.pop(protocol, None)

    def body(self, protocol: Any) -> None:
        """``protocol`` waits for (more of) a request's body: its body clock starts now."""
        if protocol in self.closing:
            return
        timeout = self.limits.body_timeout
        if timeout is None and self.limits.max_connections is None:
            return
        self.bodies[protocol] = time.monotonic()
        self.bodies.move_to_end(protocol)
        if timeout is not None and self._body_sweep is None:
            self._body_sweep = self.loop.call_later(timeout, self._expire_bodies)

    def body_done(self, protocol: Any) -> None:
        """The request's body is complete (or the connection changed hands)."""
        self.bodies.pop(protocol, None)

    def forget(self, protocol: Any) -> None:
        self.waiting.pop(protocol, None)
        self.bodies.pop(protocol, None)
        self.closing.discard(protocol)

    # -- closing -----------------------------------------------------------------------------

    def refuse(self, protocol: Any, status: int | None, why: str) -> None:
        """Answer ``status`` and close: a head over a limit. ``None``: close without an
        answer (a trailer over a limit, when the app may be answering already)."""
        self.done(protocol)
        self.body_done(protocol)
        if status is None:
            logger.warning("%s%s: connection closed", _who(protocol), why)
        else:
            logger.warning("%s%s: %d %s", _who(protocol), why, status, HTTPStatus(status).phrase)
        self._close(protocol, status)

    def _close(self, protocol: Any, status: int | None) -> None:
        self.closing.add(protocol)
        close(protocol, status)

    def _schedule(self, deadline: float) -> None:
        self._sweep = self.loop.call_later(max(deadline - time.monotonic(), 0.0), self._expire)

    #: Connections closed per turn of the event loop when many are late at once (a crowd that
    #: connected together): the loop serves others between batches.
    BATCH = 64

    def _expire(self) -> None:
        """Close the connections whose head is late; then wait for the next deadline."""
        self._sweep = None
        now = time.monotonic()
        for _ in range(self.BATCH):
            if not self.waiting:
                return
            protocol, deadline = next(iter(self.waiting.items()))
            if deadline > now:
                if deadline != float("inf"):
                    self._schedule(deadline)
                return
            del self.waiting[protocol]
            self.timed_out += 1
            if protocol._zcio_head_bytes:
                timeout = self.limits.head_timeout
                logger.info("%srequest head not complete in %g s: 408", _who(protocol), timeout)
                self._close(protocol, 408)
            else:
                self._close(protocol, None)
        if self.waiting:
            self._schedule(now)  # more are late: the next batch after other work

    def _expire_bodies(self) -> None:
        """Close the connections whose next piece of a body is late; restart the clock of
        those the server is not reading; then wait for the next deadline."""
        self._body_sweep = None
        timeout = self.limits.body_timeout
        if timeout is None:
            return
        now = time.monotonic()
        for _ in range(self.BATCH):
            if not self.bodies:
                return
            protocol, since = next(iter(self.bodies.items()))
            if since + timeout > now:
                self._body_sweep = self.loop.call_later(since + timeout - now, self._expire_bodies)
                return
            if protocol._zcio_body_held():  # the server's doing, not the client's
                self.bodies.move_to_end(protocol)
                self.bodies[protocol] = now
                continue
            del self.bodies[protocol]
            self.timed_out += 1
            status = protocol._zcio_body_answer()
            logger.info("%srequest body: nothing for %g s: %s", _who(protocol), timeout,
                        "closed" if status is None else status)  # fmt: skip
            self._close(protocol, status)
        if self.bodies:
            self._body_sweep = self.loop.call_later(0, self._expire_bodies)

    def _warn_cap(self, cap: int) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self.WARN_EVERY:
            self._warned_at = now
            logger.warning(
                "%d connections open (the cap): %d waiting ones closed, %d new ones refused so far",
                cap,
                self.evicted,
                self.refused,
            )
