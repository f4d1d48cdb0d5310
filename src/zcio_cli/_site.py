"""The ASGI app behind ``zcio serve``: a folder as a website, file bodies by zero-copy.

Files go through :class:`zcio_starlette.StaticFiles` (Range, multipart ranges, ETag,
Last-Modified, 304s, HEAD), so on :mod:`zcio_uvicorn` every body byte leaves by ``sendfile(2)``.
Folders without an ``index.html`` get an HTML listing.

What is never served (a 404, the same as a missing file): anything whose real path (symlinks
resolved) is outside the root, ``..`` in any spelling (the server decodes ``%2e%2e`` before
this app sees it), NUL bytes, and hidden entries (a path segment starting with ``.``), which
are not listed either.
"""

from __future__ import annotations

import html
import logging
import os
import stat
import time
from urllib.parse import quote

import anyio
from starlette.datastructures import URL
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

import zcio
import zcio.asgi
from zcio_starlette import StaticFiles

from ._report import human

__all__ = ["ROOT_ENV", "Site", "app_from_environment"]

ROOT_ENV = "ZCIO_SERVE_ROOT"  # how --workers N hands the folder to its worker processes
CACHE_ENV = "ZCIO_SERVE_CACHE"  # and the cache's options: "TTL,FILES" (FILES empty: default)
log = logging.getLogger("uvicorn.error")  # uvicorn's own log: its format, its level


class Site(StaticFiles):
    """``root`` as a website. Also answers the ASGI lifespan: at shutdown it logs how many
    bytes each method moved in this process."""

    def __init__(self, root: str, *, cache: tuple[float, int | None] = (1.0, None)) -> None:
        super().__init__(directory=root, html=False, follow_symlink=False, check_dir=True)
        self.root = os.path.realpath(root)
        ttl, files = cache
        # Its own cache, not the thread's default: the options are this site's.
        self.cache = False if files == 0 else zcio.asgi.FileCache(ttl=ttl, max_files=files)
        self._start = zcio.stats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        except HTTPException as exc:  # raised before any response started: answer it here
            await PlainTextResponse(exc.detail, exc.status_code, exc.headers)(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                log.info("pid %d, %s", os.getpid(), (zcio.stats() - self._start).summary())
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def get_response(self, path: str, scope: Scope) -> Response:
        parts = [part for part in path.split("/") if part not in ("", ".")]
        if "\0" in path or any(part.startswith(".") for part in parts):
            raise HTTPException(status_code=404)  # hidden, '..', or a NUL: not ours to show
        try:
            return await super().get_response(path, scope)  # files: one lookup, the fast path
        except HTTPException as exc:
            if exc.status_code != 404:
                raise
            folder = await anyio.to_thread.run_sync(self._folder, path)
            if folder is None:
                raise
        if not scope["path"].endswith("/"):
            url = URL(scope=scope)
            return RedirectResponse(url.replace(path=url.path + "/"))
        index = os.path.join(folder, "index.html")
        info = await anyio.to_thread.run_sync(_stat, index)
        if info is not None and stat.S_ISREG(info.st_mode):
            return self.file_response(index, info, scope)
        try:
            page = await anyio.to_thread.run_sync(self._listing, folder, scope["path"])
        except OSError:  # no longer a folder inside the root
            raise HTTPException(status_code=404) from None
        return HTMLResponse(page)

    def _folder(self, path: str) -> str | None:
        """The real path of the folder ``path`` names inside the root, or None."""
        full, info = self.lookup_path(path)
        return full if info is not None and stat.S_ISDIR(info.st_mode) else None

    def _listing(self, folder: str, url_path: str) -> str:
        """The listing of ``folder``, read through a descriptor opened beneath the root (the
        same containment as files: a folder swapped for a symlink leading out is refused)."""
        beneath = self.folder_of(folder)
        if beneath is None:
            raise FileNotFoundError(folder)
        fd = beneath[0].scandir_fd(beneath[1])
        try:
            return _listing(self.root, folder, fd, url_path)
        finally:
            os.close(fd)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _listing(root: str, folder: str, fd: int, url_path: str) -> str:
    """An HTML index of ``folder``, open at ``fd``: folders first, then files, with sizes and
    dates. Hidden entries and symlinks leading out of ``root`` (which would get a 404) are
    left out. A name that is not UTF-8 is shown with its odd bytes escaped (``\\xff``) and
    linked by its percent-encoded bytes."""
    rows: list[tuple[bool, str, int, float]] = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and not _inside(
                root, os.path.realpath(os.path.join(folder, entry.name))
            ):
                continue
            try:
                info = entry.stat()
            except OSError:
                continue  # a dangling symlink, or it just went away
            rows.append((not stat.S_ISDIR(info.st_mode), entry.name, info.st_size, info.st_mtime))
    rows.sort()
    title = html.escape(f"Index of {url_path.encode('utf-8', 'backslashreplace').decode()}")
    lines = [
        "<!doctype html>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        "<style>body{font-family:sans-serif}td{padding:0 1em}td.n{text-align:right}</style>",
        f"<h1>{title}</h1>",
        "<table>",
    ]
    if url_path != "/":
        lines.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
    for is_file, name, size, mtime in rows:
        shown = name if is_file else name + "/"
        href = quote(shown, errors="surrogateescape")
        label = os.fsencode(shown).decode("utf-8", "backslashreplace")
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(mtime))
        lines.append(
            f'<tr><td><a href="{html.escape(href)}">{html.escape(label)}</a></td>'
            f'<td class="n">{human(size) if is_file else "-"}</td><td>{when} UTC</td></tr>'
        )
    lines.append("</table>")
    return "\n".join(lines) + "\n"


def _inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


def app_from_environment() -> Site:
    """The app factory for ``--workers N``: the root comes from ``ZCIO_SERVE_ROOT``, the
    cache's options from ``ZCIO_SERVE_CACHE``."""
    ttl, _, files = os.environ.get(CACHE_ENV, "1,").partition(",")
    return Site(os.environ[ROOT_ENV], cache=(float(ttl), int(files) if files else None))
