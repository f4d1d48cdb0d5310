"""Zero-copy trio streams.

``ZeroCopySocketStream`` wraps a ``trio.SocketStream`` and keeps its whole contract (it passes
``trio.testing.check_half_closeable_stream``), adding ``send_file`` (``sendfile(2)``) and
``splice_from`` (``splice(2)``); ``ZeroCopyStream`` does the same for any trio stream, through
the user-space fallback where TLS runs in Python. Uses only zcio's public API.
"""

from ._stream import (
    BrokenDestination as BrokenDestination,
    BrokenSource as BrokenSource,
    ClosedDestination as ClosedDestination,
    ClosedSource as ClosedSource,
    ZeroCopySocketStream as ZeroCopySocketStream,
    ZeroCopyStream as ZeroCopyStream,
    open_tcp_stream as open_tcp_stream,
    serve_tcp as serve_tcp,
    wrap as wrap,
)

__all__ = [
    "BrokenDestination",
    "BrokenSource",
    "ClosedDestination",
    "ClosedSource",
    "ZeroCopySocketStream",
    "ZeroCopyStream",
    "open_tcp_stream",
    "serve_tcp",
    "wrap",
]
