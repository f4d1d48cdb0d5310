"""The numbers every transfer path shares: flags, clamps, slice sizes and time limits.

One module, so that ``send_file``, ``splice_stream`` and ``tee_stream`` cannot drift apart.
"""

from __future__ import annotations

import os

__all__ = [
    "CLOSE_POLL",
    "COLD_LOOKAHEAD",
    "DATAGRAM_CHUNK",
    "DIRECT_CHUNK",
    "FILE_CHUNK",
    "MAX_CALL",
    "MAX_OFFSET",
    "SENDFILE_CHUNK",
    "SMALL_SEND_MAX",
    "SPLICE_FLAGS",
    "STRANDED_FLUSH",
    "UNBOUNDED",
    "USER_CHUNK",
]

#: The most Linux moves in one zero-copy call: asking for more fails on some kernels (EINVAL)
#: and overflows on others. Every sendfile, splice, tee and copy_file_range is clamped to it.
MAX_CALL = 0x7FFFF000
#: The largest file offset (``off_t``): an offset, or an offset plus a count, past it is no
#: position in any file.
MAX_OFFSET = (1 << 63) - 1
#: ``remaining`` of a transfer with ``count=None``: more than any stream will ever carry.
UNBOUNDED = 1 << 62
#: Every splice: move pages rather than copy them, and never block (the loop waits instead).
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK

#: Largest slice handed to one sendfile on the event loop (nginx's ``sendfile_max_chunk``
#: default). It bounds how long one call holds the loop when the peer is fast: about 1 ms here,
#: against 2-3 ms for 4 MiB, for the same throughput (bench/send_file.py, lag table).
SENDFILE_CHUNK = 2 << 20
#: After a slice of a file that was not in the page cache, the event loop reads that file's
#: pages again only once this much ahead (or the rest of the transfer) is cached
#: (``_file_loops.Warmth``): more than a readahead window of the worker thread's reads.
COLD_LOOKAHEAD = 64 << 20
#: Slice for file-to-file copies, each one a worker-thread round trip.
FILE_CHUNK = 16 << 20
#: Buffer for user-space copies.
USER_CHUNK = 256 << 10
#: A datagram socket sends each write as one message, and refuses messages over ~64 KiB.
DATAGRAM_CHUNK = 32 << 10
#: Slice of one direct splice (when the source or the destination is a pipe).
DIRECT_CHUNK = 1 << 20
#: Sends of up to this many bytes into an idle plaintext socket first try the small-send path
#: (``_small_send``): one ``sendfile(2)``, synchronously.
SMALL_SEND_MAX = 256 << 10

#: Seconds a cancelled transfer may spend delivering bytes it already took from its source
#: (in a pipe, or in a user-space buffer) before it gives up and reports them as stranded.
STRANDED_FLUSH = 1.0
#: How often a wait on a transport's socket checks whether the transport was closed meanwhile.
CLOSE_POLL = 0.25
