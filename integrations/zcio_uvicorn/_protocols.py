"""uvicorn's HTTP/1.1 protocols, with the ASGI zero-copy extensions and limits on what one
client may send (:mod:`zcio_uvicorn._limits`)."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Self

import h11
import httptools
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.protocols.http.flow_control import FlowControl

from ._limits import Gate, Limits, set_send_timeout
from ._report import Reporter
from ._zerocopy import EXTENSIONS, advertise, cycle_class

__all__ = ["H11Protocol", "HttpToolsProtocol", "REPORT_ENV"]

REPORT_ENV = "ZCIO_UVICORN_REPORT"
H11_DEFAULT_INCOMPLETE = 16 * 1024  # h11's max_incomplete_event_size default, and uvicorn's
#: Bytes given to httptools' parser at once. It parses all it is given, and a request cycle is
#: made per request it finds: a read (up to 256 KiB) of tiny pipelined requests would queue
#: thousands. Fed a piece at a time, the parser stops where the queue is full.
PIECE = 4096
PIECE_PIPELINED = 512  # while requests are queued: a few more at most past the limit

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
    _zcio_refusal: tuple[int | None, str] | None

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


class _Flow(FlowControl):
    """uvicorn's flow control, told by the protocol when reading must stay paused (requests
    queued up to the limit, or read bytes not yet parsed), and telling it when reading
    resumes (the app asked for more of a body: the body clock starts again)."""

    def __init__(self, transport: Any, protocol: Any) -> None:
        super().__init__(transport)
        self._zcio_protocol = protocol

    def resume_reading(self) -> None:
        protocol = self._zcio_protocol
        if protocol._zcio_holding():
            return
        super().resume_reading()
        if protocol in protocol._zcio_gate.bodies:
            protocol._zcio_gate.body(protocol)


class _BodyClock:
    """What the gate asks of a connection waiting for a body (both protocols)."""

    flow: Any
    cycle: Any

    def _zcio_holding(self) -> bool:
        return False

    def _zcio_body_held(self) -> bool:
        """True when the server, not the client, holds the body up: reading is paused (the app
        has not taken what came) or the client waits for a ``100 Continue`` not sent yet."""
        cycle = self.cycle
        return bool(self.flow.read_paused or getattr(cycle, "waiting_for_100_continue", False))

    def _zcio_body_answer(self) -> int | None:
        """408 when no response has started, else nothing (the connection is just closed)."""
        cycle = self.cycle
        return 408 if cycle is None or not cycle.response_started else None


class _Refused(Exception):
    """Raised in a parser callback to stop the parser; the refusal is on the protocol."""


class H11Protocol(_BodyClock, _Configurable, h11_impl.H11Protocol):
    """uvicorn's h11 protocol, advertising and serving ``http.response.zerocopysend`` and
    ``http.response.pathsend`` on plaintext connections with ``sendfile(2)``, and enforcing
    :attr:`limits`.

    ``uvicorn app:app --http zcio_uvicorn:H11Protocol``
    """

    conn: _LimitedConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _setup(self)
        # h11 holds an unfinished head (or trailer) in its buffer: bounded by the head's
        # budget, or by uvicorn's --h11-max-incomplete-event-size when that is smaller.
        sizes = [self.limits.head_budget, self.config.h11_max_incomplete_event_size]
        bound = min((n for n in sizes if n is not None), default=None)
        bound = H11_DEFAULT_INCOMPLETE if bound is None else bound
        self.conn = _LimitedConnection(h11.SERVER, bound, self.limits)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.flow = _Flow(transport, self)
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
        refusal = self.conn.zcio_refusal
        if refusal is not None:
            self._zcio_gate.refuse(self, *refusal)
            return
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._zcio_head_bytes = 0
            self._zcio_gate.done(self)
        if state is h11.SEND_BODY and not self.transport.is_closing():
            if self.conn.zcio_progress or self not in self._zcio_gate.bodies:
                self._zcio_gate.body(self)  # the head came, or a piece of the body
        else:
            self._zcio_gate.body_done(self)
        self.conn.zcio_progress = False
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            advertise(self, cycle, _H11Cycle)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._zcio_gate.wait(self)  # before uvicorn parses a pipelined request it holds
        super().on_response_complete()


class _LimitedConnection(h11.Connection):
    """h11's server connection, refusing heads and trailers over the limits before uvicorn
    sees them, and noting when a piece of a body arrives (``zcio_progress``).

    A refusal is kept in ``zcio_refusal`` and reported as ``NEED_DATA``, so uvicorn's loop
    stops without its generic 400; the protocol then answers it (a trailer's: closes)."""

    def __init__(self, our_role: Any, max_incomplete_event_size: int, limits: Limits) -> None:
        super().__init__(our_role, max_incomplete_event_size=max_incomplete_event_size)
        self.zcio_limits = limits
        self.zcio_refusal: tuple[int | None, str] | None = None
        self.zcio_progress = False

    def next_event(self) -> Any:
        if self.zcio_refusal is not None:
            return h11.NEED_DATA
        limits = self.zcio_limits
        state = self.their_state  # h11 moves to ERROR as it raises
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            heads = (limits.max_request_line, limits.max_header_bytes, limits.max_headers)
            if exc.error_status_hint != 431 or heads == (None, None, None):
                raise  # uvicorn's own answer (400), as stock
            if state is h11.SEND_BODY:  # an unfinished trailer over h11's bound
                size = len(self.trailing_data[0])
                self.zcio_refusal = (None, f"chunked trailer over {size} bytes")
                return h11.NEED_DATA
            if state is not h11.IDLE:
                raise
            unfinished = self.trailing_data[0]
            if b"\n" not in unfinished:  # still in the request line
                self.zcio_refusal = (414, f"request line over {len(unfinished)} bytes")
            else:
                self.zcio_refusal = (431, f"request head over {limits.head_budget} bytes")
            return h11.NEED_DATA
        if isinstance(event, h11.Data):
            self.zcio_progress = True
        elif isinstance(event, h11.Request):
            # raw_items: a plain list (iterating h11's Headers goes through collections.abc)
            self.zcio_refusal = _check_head(limits, len(event.target), event.headers.raw_items())
            if self.zcio_refusal is not None:
                return h11.NEED_DATA
        elif isinstance(event, h11.EndOfMessage) and event.headers:
            refusal = _check_head(limits, 0, event.headers.raw_items())
            if refusal is not None:
                self.zcio_refusal = (None, "chunked trailer: " + refusal[1])
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


class HttpToolsProtocol(_BodyClock, _Configurable, httptools_impl.HttpToolsProtocol):
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
        self._zcio_fields = 0
        # read, not yet parsed (a view of the read: never copied): reading is paused meanwhile
        self._zcio_unparsed: memoryview | bytes = b""
        self._zcio_release_soon = False
        self._zcio_chunk_gap = False  # after a chunk's size line, before any of its data
        self._zcio_gap_bytes = 0  # bytes of the pieces since, not counting the piece it was in
        self._zcio_gap_began = False  # in the piece being parsed

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.flow = _Flow(transport, self)
        if self._zcio_gate.admit(self):
            self._zcio_gate.wait(self)
            set_send_timeout(transport, self.limits.send_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._zcio_gate.forget(self)
        self._zcio_unparsed = b""
        super().connection_lost(exc)
        if self._zcio_gate.reporter is not None:
            self._zcio_gate.reporter.lost()

    def _zcio_holding(self) -> bool:
        """Reading must stay paused: bytes wait to be parsed, or the queue is full."""
        most = self.limits.max_pipelined
        return bool(self._zcio_unparsed) or (most is not None and len(self.pipeline) >= most)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._zcio_unparsed:  # a read that was under way as reading paused
            self._zcio_unparsed = bytes(self._zcio_unparsed) + data
            return
        self._zcio_feed(data)

    def _zcio_feed(self, data: bytes | memoryview) -> None:
        """Parse ``data`` a piece at a time; keep what is left once the queue is full."""
        most = self.limits.max_pipelined
        if most is None:
            self._zcio_parse(data)
            return
        view = memoryview(data)
        at, end = 0, len(data)
        while at < end:
            if len(self.pipeline) >= most:
                self._zcio_unparsed = view[at:]
                self.flow.pause_reading()
                return
            piece = view[at : at + (PIECE_PIPELINED if self.pipeline else PIECE)]
            at += len(piece)
            if not self._zcio_parse(piece):
                return

    def _zcio_parse(self, data: Any) -> bool:
        """uvicorn's data_received for one piece, plus the refusals. False: stop parsing
        (refused, upgraded, or an invalid request).

        httptools keeps an unfinished header or trailer field inside the parser (and copies
        it whole for each new piece), unseen by any callback: the bytes that arrive outside a
        body, and those after a chunk's size line before any of its data (a trailer), are
        counted here, and the connection is refused once they take a head over its budget or
        a trailer over ``max_header_bytes`` (so the parser never holds more than that and one
        piece)."""
        if not self._zcio_in_body:
            self._zcio_head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._zcio_refusal is not None:
                self._zcio_gate.refuse(self, *self._zcio_refusal)
                return False
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return False
        except httptools.HttpParserUpgrade:
            self._zcio_gate.body_done(self)
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        if self.transport.is_closing():
            return False
        limits = self.limits
        budget = limits.head_budget
        if budget is not None and not self._zcio_in_body and self._zcio_head_bytes > budget:
            self._zcio_gate.refuse(self, 431, f"request head over {budget} bytes")
            return False
        most = limits.max_header_bytes
        if self._zcio_gap_began:  # where in this piece is unknown: counting starts at the next
            self._zcio_gap_began = False
        elif self._zcio_chunk_gap and most is not None:
            self._zcio_gap_bytes += len(data)
            if self._zcio_gap_bytes > most:
                self._zcio_gate.refuse(self, None, f"chunked trailer over {most} bytes")
                return False
        return True

    def _zcio_release(self) -> None:
        """Parse what was held back once the queue has room; read again when all is parsed."""
        self._zcio_release_soon = False
        if self.parser is None or self.transport.is_closing():
            self._zcio_unparsed = b""
            return
        data, self._zcio_unparsed = self._zcio_unparsed, b""
        self._unset_keepalive_if_required()  # as for bytes just read
        self._zcio_feed(data)
        self.flow.resume_reading()  # unless the queue filled again

    def _refuse_in_callback(self, status: int, why: str) -> None:
        if self._zcio_in_body:  # a trailer: the app may be answering already
            self._zcio_refusal = (None, "chunked trailer: " + why)
        else:
            self._zcio_refusal = (status, why)
        raise _Refused(why)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._zcio_header_bytes = 0
        self._zcio_fields = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        limit = self.limits.max_request_line
        if limit is not None and len(self.url) > limit:
            self._refuse_in_callback(414, f"request target over {limit} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        limits = self.limits
        self._zcio_fields += 1
        if limits.max_headers is not None and self._zcio_fields > limits.max_headers:
            self._refuse_in_callback(431, f"more than {limits.max_headers} header fields")
        self._zcio_header_bytes += len(name) + len(value) + 4
        most = limits.max_header_bytes
        if most is not None and self._zcio_header_bytes > most:
            self._refuse_in_callback(431, f"header fields over {most} bytes")

    def on_headers_complete(self) -> None:
        self._zcio_in_body = True
        self._zcio_head_bytes = 0
        self._zcio_header_bytes = self._zcio_fields = 0  # a trailer's are counted apart
        self._zcio_gate.done(self)
        self._zcio_gate.body(self)
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None:  # a pipelined request's cycle is created here too, then queued
            advertise(self, cycle, _HttpToolsCycle)

    def on_body(self, body: bytes) -> None:
        self._zcio_chunk_gap = False
        self._zcio_gate.body(self)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._zcio_chunk_gap = self._zcio_gap_began = True
        self._zcio_gap_bytes = 0

    def on_message_complete(self) -> None:
        self._zcio_in_body = self._zcio_chunk_gap = False
        self._zcio_gate.body_done(self)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if not pipelined:
            self._zcio_gate.wait(self)
        if self._zcio_unparsed:
            if not self._zcio_release_soon:  # not from inside the app's send
                self._zcio_release_soon = True
                self.loop.call_soon(self._zcio_release)
        else:
            self.flow.resume_reading()  # uvicorn's came before it took one off the queue
