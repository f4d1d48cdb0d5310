"""Django's ASGI handler, with file responses handed to the server instead of read into memory."""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import django
from asgiref.sync import sync_to_async
from django.contrib.staticfiles.handlers import (
    ASGIStaticFilesHandler as DjangoASGIStaticFilesHandler,
    StaticFilesHandlerMixin,
)
from django.core.handlers.asgi import ASGIHandler as DjangoASGIHandler
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase

from zcio.asgi import PATHSEND, ZEROCOPYSEND

from ._files import FileBody, Way, choose, file_body
from ._static import Finder

__all__ = ["ASGIHandler", "ASGIStaticFilesHandler", "FileSendingMixin", "get_asgi_application"]

Scope = dict[str, Any]
Message = dict[str, Any]

# The scope of the request being handled: Django's send_response is given the response and
# ``send`` only. Set in ``handle`` and seen by every task Django starts from there (they copy
# the context when created).
_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar(
    "zcio_django_scope", default=None
)


class FileSendingMixin:
    """The part of :class:`ASGIHandler` that sends file bodies; mix it in front of any
    subclass of Django's ``ASGIHandler`` (as :class:`ASGIStaticFilesHandler` does).

    Only ``handle`` (to see the scope) and ``send_response`` are overridden. A response
    whose body is not a plain binary regular file (see :func:`zcio_django.file_body`) goes
    through Django's own ``send_response``, unchanged.
    """

    #: Whether a file body may go by ``http.response.pathsend`` (the server opens the path
    #: again, later): not for files opened beneath a folder (:class:`ASGIStaticFilesHandler`).
    pathsend_allowed = True

    #: The size of each read when the body goes in chunks (no extension on the server).
    #: Each read is one ``http.response.body`` message: what a download holds in memory.
    file_chunk_size = 256 * 1024

    async def handle(self, scope: Scope, receive: Any, send: Any) -> None:
        token = _scope.set(scope)
        try:
            await super().handle(scope, receive, send)  # type: ignore[misc]
        finally:
            _scope.reset(token)

    async def send_response(self, response: HttpResponseBase, send: Any) -> None:
        """Send ``response``: Django's status line and headers, then the file body by the
        way :func:`zcio_django.choose` picks for this request, or Django's own body.

        The file is not closed here: Django closes it with ``response.close()`` after this
        returns, raises or is cancelled (a client disconnect), once. On cancellation during
        a chunked body, a read already running in a worker thread is waited for first, so
        that the file is never closed under it; the client then has some, all or none of
        the body. A file that shrank below its Content-Length: with ``zerocopysend`` the
        server aborts the connection; with ``pathsend`` the server sends what the file
        holds when it opens it, and the Content-Length decides; in chunks the body ends
        short, as with Django's own handler, and the server refuses it.
        """
        scope = _scope.get()
        body = file_body(response) if scope is not None else None
        way = choose(scope, body) if scope is not None else Way.DJANGO
        if way is Way.PATHSEND and not self.pathsend_allowed:
            way = Way.CHUNKS
        if way is Way.DJANGO or body is None:
            await super().send_response(response, send)  # type: ignore[misc]
            return
        # Django's own code makes the start message (headers, cookies, their encodings, as
        # this Django version does them); the body it would send for this stand-in is
        # dropped.
        await super().send_response(_HeadersOf(response), _StartOnly(send))  # type: ignore[misc]
        if way is Way.HEADERS_ONLY or body.count == 0:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif way is Way.ZEROCOPYSEND:
            await send(
                {
                    "type": ZEROCOPYSEND,
                    "file": body.file,
                    "offset": body.offset,
                    "count": body.count,
                    "more_body": False,
                }
            )
        elif way is Way.PATHSEND and (path := body.same_file_path()) is not None:
            await send({"type": PATHSEND, "path": path})
        else:
            await self._send_chunks(body, send)

    async def _send_chunks(self, body: FileBody, send: Any) -> None:
        """``body`` in reads of at most ``file_chunk_size``, each sent before the next read
        (the server's ``send`` waits while its buffer is full, so memory stays bounded),
        then Django's closing empty message."""
        offset, left = body.offset, body.count
        while left > 0:
            chunk = await _read(body.fd, min(self.file_chunk_size, left), offset)
            if not chunk:
                break  # the file ended early: a short body, as Django's handler sends it
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            offset += len(chunk)
            left -= len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _read(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset``: inline if the page cache has them (RWF_NOWAIT
    never waits for the disk), else in a worker thread. A cancellation while the thread
    reads is taken once the read is over (it is bounded), so that the caller may close the
    file at once."""
    buffer = bytearray(size)
    try:
        got = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
    except OSError:  # BlockingIOError: not cached; EOPNOTSUPP and others: ask a thread
        got = 0
    if got > 0:
        del buffer[got:]
        return bytes(buffer)
    loop = asyncio.get_running_loop()
    reading = loop.run_in_executor(None, os.pread, fd, size, offset)
    try:
        return await asyncio.shield(reading)
    except asyncio.CancelledError:
        await asyncio.wait([reading])
        raise


class _HeadersOf:
    """What Django's ``send_response`` reads from a response to make the start message,
    with an empty, non-streaming body so that it reads no file."""

    streaming = False
    content = b""

    def __init__(self, response: HttpResponseBase) -> None:
        self.status_code = response.status_code
        self.cookies = response.cookies
        self.items = response.items


class _StartOnly:
    """A ``send`` that passes on ``http.response.start`` and drops the rest."""

    __slots__ = ("_send",)

    def __init__(self, send: Any) -> None:
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._send(message)


class ASGIHandler(FileSendingMixin, DjangoASGIHandler):
    """Django's ``ASGIHandler``, with file bodies sent by ``http.response.zerocopysend``
    where the server advertises it, else ``http.response.pathsend`` where that is exact,
    else in bounded chunks read off the event loop. Everything else is Django's."""


class ASGIStaticFilesHandler(FileSendingMixin, DjangoASGIStaticFilesHandler):  # type: ignore[misc]
    """``django.contrib.staticfiles``' ``ASGIStaticFilesHandler`` with the same file
    sending: Django's reads every static file into memory (``sync_to_async(list)``) before
    sending it; this one leaves a file body as it is for :class:`FileSendingMixin`. Wrap
    the application the same way: ``ASGIStaticFilesHandler(get_asgi_application())``.

    **Containment.** Django's finders check that a path exists, then Django opens it again by
    name: a symlink planted in a static folder is followed out of it, a name swapped in
    between serves one file under another's headers, a FIFO is waited on, ``/dev/zero`` is
    read into memory, and ``..`` in a URL is a 500. Here each candidate location is opened
    instead of checked, once, in Django's finders' order, and the response made from that
    open file (``zcio_django._static.Finder``): with ``follow_symlink=False`` (the default)
    beneath a descriptor of the location (:class:`zcio.Folder`), so a symlink or ``..``
    leading out is never followed whatever races (symlinks that stay inside are); with
    ``follow_symlink=True`` by path, as Django does. Either way only a regular file is served
    (a FIFO or a device is never waited on nor read; with ``follow_symlink=True`` a file of
    ``/proc`` or ``/sys`` is refused too), and what is not served is Django's 404: a FIFO, a
    device, a symlink leading out, ``..``, a symlink loop, an over-long name. The file goes by
    ``zerocopysend`` or in chunks, never by ``pathsend`` (the server would open the path
    again). Finders other than Django's ``FileSystemFinder`` and ``AppDirectoriesFinder``
    are asked for a path as Django asks them, and that path opened by name (not contained).
    Errors are Django's (a file it cannot read is a 500); a lookup runs in a worker thread,
    which a cancellation waits for, as Django's does.
    """

    pathsend_allowed = False

    def __init__(self, application: Any, *, follow_symlink: bool = False) -> None:
        super().__init__(application)
        self.follow_symlink = follow_symlink
        self.finder = Finder(follow_symlink=follow_symlink)
        self.finder.open_folders()

    def serve(self, request: HttpRequest) -> HttpResponse | FileResponse:
        """Serve the request's path (in a worker thread): :meth:`Finder.serve`."""
        return self.finder.serve(request, self.file_path(request.path))

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # StaticFilesHandlerMixin's serve, then what Django's subclass adds, except the read
        # of a file body into memory.
        response: Any = await StaticFilesHandlerMixin.get_response_async(self, request)
        response._resource_closers.append(request.close)
        if response.streaming and not response.is_async and file_body(response) is None:
            iterator = response.streaming_content
            response.streaming_content = _all_at_once(iterator)
        return response  # type: ignore[no-any-return]


async def _all_at_once(iterator: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Django's wrapper for a synchronous streaming body under the static-files handler."""
    for part in await sync_to_async(_as_list)(iterator):
        yield part


def _as_list(iterator: Iterator[bytes]) -> list[bytes]:
    return list(iterator)


def get_asgi_application() -> ASGIHandler:
    """``django.core.asgi.get_asgi_application()``, returning :class:`ASGIHandler`: sets
    Django up (``django.setup(set_prefix=False)``) and returns the ASGI 3 application."""
    django.setup(set_prefix=False)
    return ASGIHandler()
