"""The "proxy two connections" job for asyncio streams."""

from __future__ import annotations

import asyncio

import zcio

__all__ = ["relay"]


async def _one_way(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> int:
    moved = await zcio.splice_stream(reader, writer)
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()  # pass the half-close on; the other direction goes on
    return moved


async def relay(
    a: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    b: tuple[asyncio.StreamReader, asyncio.StreamWriter],
) -> tuple[int, int]:
    """Relay two connections both ways until both directions have ended.

    Each direction runs :func:`zcio.splice_stream` (``splice(2)`` through a kernel pipe; bytes
    the readers had buffered go first) and, when its reader ends, passes the end on with
    ``write_eof()``; the other direction goes on until it ends too (half-close). Returns the
    bytes moved ``(a -> b, b -> a)``. The writers are not closed: that is the caller's.

    If one direction fails (a reset, say), the other is cancelled and the error propagates as
    an ``ExceptionGroup`` of zcio's errors (``zcio.BrokenSource``, ``zcio.BrokenDestination``,
    ...), each with its exact ``.sent`` count.
    """
    (a_reader, a_writer), (b_reader, b_writer) = a, b
    async with asyncio.TaskGroup() as tg:
        forward = tg.create_task(_one_way(a_reader, b_writer))
        backward = tg.create_task(_one_way(b_reader, a_writer))
    return forward.result(), backward.result()
