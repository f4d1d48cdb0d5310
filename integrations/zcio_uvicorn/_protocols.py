"""uvicorn's HTTP/1.1 protocols, with the ASGI zero-copy extensions and limits on what one
client may send (:mod:`zcio_uvicorn._limits`)."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

import h11
import httptools
from uvicorn.protocols.http import h11_impl, httptools_impl

from ._limits import Gate, Limits, set_send_timeout
from ._report import Reporter
from ._zerocopy import EXTENSIONS, advertise, cycle_class

__all__ = ["H11Protocol", "HttpToolsProtocol", "REPORT_ENV"]

REPORT_ENV = "ZCIO_UVICORN_REPORT"
H11_DEFAULT_INCOMPLETE = 16 * 1024  # h11's max_incomplete_event_size default, and uvicorn's

#: Read once, when zcio_uvicorn is imported (a worker process imports it anew): a variable that
#: is not a number fails the import, so uvicorn stops at startup with the variable's name.
_LIMITS = Limits.from_environment()
_REPORT = os.environ.get(REPORT_ENV, "1").strip().lower() not in ("0", "off", "no", "false")


class _Placeholder:
    """Stands for ``count`` body bytes in h11's framing; ``sendfile`` writes the real ones."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


def _h11_framing(cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]:
    # h11 counts the bytes against Content-Length (or writes the chunk's size line and CRLF)
    # and hands our placeholder back in place of the data: see h11's "sendfile" docs.
    placeholder = _Placeholder(count)
    data: Any = placeholder  # h11 only takes len() of it and passes it through
    pieces = cycle.conn.send_with_data_passthrough(h11.Data(data=data))
    at = next(i for i, piece in enumerate(pieces) if piece is placeholder)
    return pieces[:at], pieces[at + 1 :]


def _httptools_framing(cycle: Any, count: int) -> tuple[list[bytes], list[bytes]]:
    # The bookkeeping httptools' cycle.send does for a body of `count` bytes.
    if cycle.chunked_encoding:
        return [b"%x\r\n" % count], [b"\r\n"]
    if count > cycle.expected_content_length:
        raise RuntimeError("Response content longer than Content-Length")
    cycle.expected_content_length -= count
    return [], []


_H11Cycle = cycle_class(h11_impl.RequestResponseCycle, _h11_framing)
_HttpToolsCycle = cycle_class(httptools_impl.RequestResponseCycle, _httptools_framing)


class _Configurable:
    """The class attributes both protocols read, and the way to change them."""

    #: What one client may send; default: :class:`Limits` with ``ZCIO_UVICORN_*`` applied.
    limits: ClassVar[Limits] = _LIMITS
    #: Log what is offered at the first connection and the bytes moved at the end
    #: (``ZCIO_UVICORN_REPORT=0`` turns it off).
    report: ClassVar[bool] = _REPORT

    _zcio_gate: Gate  # the server's; set by _setup
    _zcio_head_bytes: int
    _zcio_refusal: tuple[int, str] | None

    @classmethod
    def configure(cls, limits: Limits | None = None, *, report: bool | None = None) -> type[Self]:
        """A subclass with other ``limits`` and/or ``report``, to give uvicorn as ``http=``:
        ``uvicorn.run(app, http=HttpToolsProtocol.configure(Limits(head_timeout=5)))``.

        uvicorn imports a protocol class by name in each ``--workers`` process, so a subclass
        made here works with one process; for several, put it in a module of yours (``--http
        yourmodule:Protocol``) or set the ``ZCIO_UVICORN_*`` variables.
        """
        attributes: dict[str, Any] = {"__module__": cls.__module__}
        attributes["__qualname__"] = cls.__qualname__
        if limits is not None:
            attributes["limits"] = limits
        if report is not None:
            attributes["report"] = report
        return type(cls.__name__, (cls,), attributes)


def _setup(protocol: Any) -> None:
    """Per connection: find (or, on the server's first connection, make) the server's gate."""
    state = protocol.server_state
    gate: Gate | None = state.__dict__.get("_zcio_gate")
    if gate is None:
        limits: Limits = protocol.limits
        gate = state._zcio_gate = Gate(limits, protocol.loop)
        if protocol.report:
            gate.reporter = Reporter(protocol, EXTENSIONS, limits.describe())
    protocol._zcio_gate = gate
    protocol._zcio_head_bytes = 0  # bytes that arrived while a head was being read
    protocol._zcio_refusal = None  # (status, why): a limit a parser callback found crossed


class _Refused(Exception):
    """Raised in a parser callback to stop the parser; the refusal is on the protocol."""


class H11Protocol(_Configurable, h11_impl.H11Protocol):
    """uvicorn's h11 protocol, advertising and serving ``http.response.zerocopysend`` and
    ``http.response.pathsend`` on plaintext connections with ``sendfile(2)``, and enforcing
    :attr:`limits`.

    ``uvicorn app:app --http zcio_uvicorn:H11Protocol``
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self)
        limits = self.limits
        if (limits.max_request_line, limits.max_header_bytes, limits.max_headers) != (None,) * 3:
            # h11 holds an unfinished head in its buffer: bounded by the head's budget, or by
            # uvicorn's --h11-max-incomplete-event-size when that is smaller.
            sizes = [limits.head_budget, self.config.h11_max_incomplete_event_size]
            bound = min((n for n in sizes if n is not None), default=None)
            bound = H11_DEFAULT_INCOMPLETE if bound is None else bound
            self.conn = _LimitedConnection(h11.SERVER, bound, limits)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self._zcio_gate.admit(self):
            self._zcio_gate.wait(self)
            set_send_timeout(transport, self.limits.send_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._zcio_gate.forget(self)
        super().connection_lost(exc)
        if self._zcio_gate.reporter is not None:
            self._zcio_gate.reporter.lost()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._zcio_head_bytes += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        refusal = getattr(self.conn, "zcio_refusal", None)
        if refusal is not None:
            self._zcio_gate.refuse(self, *refusal)
            return
        if self.conn.their_state is not h11.IDLE:
            self._zcio_head_bytes = 0
            self._zcio_gate.done(self)
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            advertise(self, cycle, _H11Cycle)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._zcio_gate.wait(self)  # before uvicorn parses a pipelined request it holds
        super().on_response_complete()


class _LimitedConnection(h11.Connection):
    """h11's server connection, refusing heads over the limits before uvicorn sees them.

    A refusal is kept in ``zcio_refusal`` and reported as ``NEED_DATA``, so uvicorn's loop
    stops without its generic 400; the protocol then answers it."""

    def __init__(self, our_role: Any, max_incomplete_event_size: int, limits: Limits) -> None:
        super().__init__(our_role, max_incomplete_event_size=max_incomplete_event_size)
        self.zcio_limits = limits
        self.zcio_refusal: tuple[int, str] | None = None

    def next_event(self) -> Any:
        if self.zcio_refusal is not None:
            return h11.NEED_DATA
        limits = self.zcio_limits
        in_head = self.their_state is h11.IDLE  # h11 moves to ERROR as it raises
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint != 431 or not in_head:
                raise
            unfinished = self.trailing_data[0]
            if b"\n" not in unfinished:  # still in the request line
                self.zcio_refusal = (414, f"request line over {len(unfinished)} bytes")
            else:
                self.zcio_refusal = (431, f"request head over {limits.head_budget} bytes")
            return h11.NEED_DATA
        if isinstance(event, h11.Request):
            # raw_items: a plain list (iterating h11's Headers goes through collections.abc)
            self.zcio_refusal = _check_head(limits, len(event.target), event.headers.raw_items())
            if self.zcio_refusal is not None:
                return h11.NEED_DATA
        return event


def _check_head(limits: Limits, target: int, headers: Any) -> tuple[int, str] | None:
    if limits.max_request_line is not None and target > limits.max_request_line:
        return 414, f"request target over {limits.max_request_line} bytes"
    if limits.max_headers is not None and len(headers) > limits.max_headers:
        return 431, f"more than {limits.max_headers} header fields"
    if limits.max_header_bytes is not None:
        size = sum(len(name) + len(value) + 4 for name, value in headers)
        if size > limits.max_header_bytes:
            return 431, f"header fields over {limits.max_header_bytes} bytes"
    return None


class HttpToolsProtocol(_Configurable, httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, advertising and serving ``http.response.zerocopysend`` and
    ``http.response.pathsend`` on plaintext connections with ``sendfile(2)``, and enforcing
    :attr:`limits`.

    ``uvicorn app:app --http zcio_uvicorn:HttpToolsProtocol``
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self)
        self._zcio_in_body = False  # between a head's end and its message's end
        self._zcio_header_bytes = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self._zcio_gate.admit(self):
            self._zcio_gate.wait(self)
            set_send_timeout(transport, self.limits.send_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._zcio_gate.forget(self)
        super().connection_lost(exc)
        if self._zcio_gate.reporter is not None:
            self._zcio_gate.reporter.lost()

    def data_received(self, data: bytes) -> None:
        # uvicorn's, plus the refusals. httptools keeps an unfinished header inside the parser
        # (and copies it whole for each new piece), unseen by any callback: the bytes that
        # arrive outside a body are counted here, and the parser is stopped once a read takes
        # them over the head's budget (so it never holds more than the budget and one read).
        in_head = not self._zcio_in_body
        if in_head:
            self._zcio_head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._zcio_refusal is not None:
                self._zcio_gate.refuse(self, *self._zcio_refusal)
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        budget = self.limits.head_budget
        if (
            budget is not None
            and not self._zcio_in_body
            and self._zcio_head_bytes > budget
            and not self.transport.is_closing()
        ):
            self._zcio_gate.refuse(self, 431, f"request head over {budget} bytes")

    def _refuse_in_callback(self, status: int, why: str) -> None:
        self._zcio_refusal = (status, why)
        raise _Refused(why)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._zcio_header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        limit = self.limits.max_request_line
        if limit is not None and len(self.url) > limit:
            self._refuse_in_callback(414, f"request target over {limit} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        limits = self.limits
        if limits.max_headers is not None and len(self.headers) > limits.max_headers:
            self._refuse_in_callback(431, f"more than {limits.max_headers} header fields")
        self._zcio_header_bytes += len(name) + len(value) + 4
        most = limits.max_header_bytes
        if most is not None and self._zcio_header_bytes > most:
            self._refuse_in_callback(431, f"header fields over {most} bytes")

    def on_headers_complete(self) -> None:
        self._zcio_in_body = True
        self._zcio_head_bytes = 0
        self._zcio_gate.done(self)
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None:  # a pipelined request's cycle is created here too, then queued
            advertise(self, cycle, _HttpToolsCycle)

    def on_message_complete(self) -> None:
        self._zcio_in_body = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._zcio_gate.wait(self)
