"""``StaticFiles`` and ``create_static_files_router``: Litestar's, serving every file through
:class:`zcio_litestar.ASGIFileResponse`, each file opened once, beneath its directory, by
:meth:`StaticFiles.open_file` (the one place the router opens a file)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, NamedTuple

from litestar.exceptions import (
    ImproperlyConfiguredException,
    InternalServerException,
    NotAuthorizedException,
    NotFoundException,
)
from litestar.file_system import BaseLocalFileSystem
from litestar.handlers import get, head
from litestar.params import FromPath
from litestar.router import Router
from litestar.static_files import StaticFiles as LitestarStaticFiles
from litestar.utils import normalize_path

import zcio
import zcio.asgi
from zcio.asgi import NotARegularFileError, Opened

from ._response import LOCAL_INFO, LOCAL_OPEN, ASGIFileResponse, adopt, stat_info

if TYPE_CHECKING:
    from litestar.datastructures import CacheControlHeader
    from litestar.openapi.spec import SecurityRequirement
    from litestar.types import (
        AfterRequestHookHandler,
        AfterResponseHookHandler,
        BeforeRequestHookHandler,
        EmptyType,
        ExceptionHandlersMap,
        Guard,
        Middleware,
        PathType,
    )

__all__ = ["Found", "StaticFiles", "create_static_files_router"]


class StaticFiles(LitestarStaticFiles):
    """Litestar's ``StaticFiles`` ASGI app (same constructor, lookups, HTML mode, 404s and
    405s) whose file responses are :class:`zcio_litestar.ASGIFileResponse`: the body goes by
    ``zerocopysend`` where the server offers it, never by ``pathsend`` (a path the server would
    open again, later, after the lookup): on a server that offers only ``pathsend``
    (granian), Litestar reads the file.

    **Containment** (on Litestar's local file system). Litestar checks a path lexically, then
    stats it, then opens it again by name when the body is sent: a symlink planted in a
    directory is followed out of it, and a name swapped between the stat and the open sends
    one file under another's headers. Here the lookup *is* the open, made once, in
    :meth:`open_file`: with ``follow_symlink=False`` (the default) beneath a descriptor of
    the directory (:class:`zcio.Folder`), so a symlink or ``..`` leading out of it is a 404
    whatever races (symlinks that stay inside are followed, as Litestar does); with
    ``follow_symlink=True`` by path, following every symlink, as Litestar does. Either way
    only a regular file is served (a FIFO or a device is opened without waiting and closed,
    never read; with ``follow_symlink=True`` a file of ``/proc`` or ``/sys`` is refused
    too), the headers are the open file's ``fstat``, and the response sends that very file,
    whichever way the body goes. Names that cannot lead to a file (a symlink loop, an
    over-long name, a file used as a folder, a NUL byte) are a 404 where Litestar answers 500.
    A file that cannot be read is Litestar's ``NotAuthorizedException`` before anything is
    sent (Litestar sends the headers, then fails).

    Another file system (``file_system`` of your own, or a subclass of Litestar's that
    overrides ``info`` or ``open``) is Litestar's own lookup and open: its ``open`` decides
    what the bytes are. Errors and cancellation are the lookup's and the response's: a lookup
    cancelled while a worker thread opens waits for the open, then closes the file.
    """

    __slots__ = ("_folders", "cache", "follow_symlink")

    def __init__(
        self,
        is_html_mode: bool,
        directories: Sequence[PathType],
        file_system: Any,
        send_as_attachment: bool = False,
        resolve_symlinks: bool = True,
        headers: dict[str, str] | None = None,
        *,
        follow_symlink: bool = False,
        cache: zcio.asgi.FileCache | bool = True,
    ) -> None:
        super().__init__(
            is_html_mode=is_html_mode,
            directories=directories,
            file_system=file_system,
            send_as_attachment=send_as_attachment,
            resolve_symlinks=resolve_symlinks,
            headers=headers,
        )
        self.follow_symlink = follow_symlink
        #: The open-file cache (:class:`zcio.asgi.FileCache`) of files found beneath a
        #: directory: ``True`` (the default) for one of the router's own that keeps fds, no
        #: bodies (``max_body=0``: the response sends from the fd), ``False`` for none.
        self.cache: zcio.asgi.FileCache | None = (
            zcio.asgi.FileCache(max_body=0)
            if cache is True
            else (cache if isinstance(cache, zcio.asgi.FileCache) else None)
        )
        #: A :class:`zcio.Folder` per directory: opened here, or at the first lookup there (in
        #: a worker thread) for a directory that does not exist yet. Kept for the app's life.
        self._folders: dict[str, zcio.Folder] = {}
        if not follow_symlink:
            for directory in self.directories:
                with contextlib.suppress(OSError):
                    self._folders.setdefault(
                        str(directory), zcio.Folder(directory, follow_symlinks=True)
                    )

    async def handle(self, path: str, is_head_response: bool) -> ASGIFileResponse:
        """Litestar's ``handle`` (the same lookups in the same order, HTML mode's
        ``index.html`` and ``404.html``, the same ``NotFoundException``), each lookup made by
        :meth:`find`, which opens the file."""
        fs = type(self.adapter.file_system)
        if fs.info is not LOCAL_INFO or fs.open is not LOCAL_OPEN:
            return adopt(await super().handle(path, is_head_response), pathsend=False)
        split_path = path.split("/")
        filename = split_path[-1]
        joined_path = Path(*split_path)
        found = await self.find(joined_path)
        if self.is_html_mode and found is not None and found.opened is None:
            filename = "index.html"
            found = await self.find(found.path / filename)
        if found is not None and found.opened is not None:
            return self._response(
                found.path, found.opened, filename, is_head_response, cached=found.cached
            )
        if self.is_html_mode:
            filename = "404.html"
            not_found = await self.find(Path(filename))
            if not_found is not None and not_found.opened is not None:
                return self._response(
                    not_found.path,
                    not_found.opened,
                    filename,
                    is_head_response,
                    404,
                    cached=not_found.cached,
                )
            found = not_found  # Litestar names what its last lookup found
        raise NotFoundException(
            f"no file or directory match the path {found.path if found else joined_path} was found"
        )

    async def find(self, file_path: PathType) -> Found | None:
        """Litestar's ``get_fs_info``: the first directory, in order, where ``file_path``
        lies lexically inside (Litestar's check against CVE-2024-32982) and names a regular
        file (opened, by :meth:`open_file`) or a directory; ``None`` if none does."""
        for directory in self.directories:
            joined_path = Path(directory, file_path)
            relative = _relative(str(directory), joined_path)
            if relative is None:
                continue
            found = await self.open_file(str(directory), relative, joined_path)
            if found is not None:
                return found
        return None

    async def open_file(self, directory: str, relative: str, joined_path: Path) -> Found | None:
        """**Where a file is opened**: ``relative`` beneath ``directory`` (``joined_path`` is
        the two joined, as Litestar names it), on the event loop when the kernel has the
        path cached on a local filesystem, else in a worker thread (shielded: a cancellation
        meanwhile is taken after it, with the file closed). ``None`` when there is nothing
        to serve there (missing, not a regular file, leading out of the directory, a name
        that cannot lead to a file): Litestar then looks in the next directory. Raises
        Litestar's ``NotAuthorizedException`` for a permission error and its
        ``InternalServerException`` for another ``OSError``."""
        if self.follow_symlink:
            cached = zcio.open_cached_stat(joined_path)
        else:
            folder = self._folders.get(directory)
            if folder is not None and self.cache is not None:
                entry = await self.cache.get(relative, folder=folder)
                if entry is not None and entry.file is not None:
                    entry.acquire()  # released by the response, or Found.close()
                    return Found(joined_path, Opened(entry.file, entry.stat), entry)
            cached = folder.open_cached(relative) if folder is not None else None
        if cached is not None:
            return Found(joined_path, Opened(*cached))
        return await zcio.asgi.open_in_thread(
            self._open_in_thread, directory, relative, joined_path
        )

    def _open_in_thread(self, directory: str, relative: str, joined_path: Path) -> Found | None:
        """:meth:`open_file`'s worker-thread half (the folder's descriptor too, the first
        time): may wait for a disk or a server."""
        try:
            if self.follow_symlink:
                opened = zcio.asgi.open_static(joined_path)
            else:
                folder = self._folders.get(directory)
                if folder is None:
                    folder = self._folders.setdefault(
                        directory, zcio.Folder(directory, follow_symlinks=True)
                    )
                opened = Opened(*folder.open(relative))
        except IsADirectoryError:
            return Found(joined_path, None)
        except (FileNotFoundError, NotADirectoryError, NotARegularFileError, ValueError):
            return None  # ValueError: a NUL byte
        except PermissionError as exc:
            raise NotAuthorizedException(
                f"failed to open {joined_path} due to missing permissions"
            ) from exc
        except OSError as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                return None
            raise InternalServerException from exc
        return Found(joined_path, opened)

    def _response(
        self,
        path: Path,
        opened: Opened,
        filename: str,
        is_head_response: bool,
        status_code: int | None = None,
        *,
        cached: zcio.asgi.CachedFile | None = None,
    ) -> ASGIFileResponse:
        """Litestar's response for the file found, with the open file's ``fstat`` for its
        info: the response sends that file (HEAD: none, so it is closed now). A file from
        the cache (``cached``, held) is released instead of closed."""
        found = Found(path, opened, cached)
        try:
            response = ASGIFileResponse(
                file_path=path,
                file_info=stat_info(str(path), opened.stat),
                file_system=self.adapter.file_system,
                filename=filename,
                status_code=status_code,
                content_disposition_type="attachment" if self.send_as_attachment else "inline",
                is_head_response=is_head_response,
                headers=self.headers,
            )
        except BaseException:
            found.close()
            raise
        response._zcio_pathsend = False
        if is_head_response:
            found.close()
        else:
            response.opened = opened.file
            response.cached = cached
        return response


class Found(NamedTuple):
    """What a lookup found: ``path``, the directory joined with the request's path (as
    Litestar names it), and the regular file there, open; ``opened`` is ``None`` for a
    directory."""

    path: Path
    opened: Opened | None
    #: The open-file cache's entry ``opened`` comes from (held): released, never closed.
    cached: zcio.asgi.CachedFile | None = None

    def close(self) -> None:
        if self.cached is not None:
            self.cached.release()
        elif self.opened is not None:
            self.opened.close()


# Names that cannot lead to a file to serve: a client's choice (404), not a server error (500).
# EXDEV: leads out of the folder (zcio.Folder says so as OutsideFolder, a FileNotFoundError).
_NOT_FOUND_ERRNOS = frozenset({errno.ELOOP, errno.ENAMETOOLONG, errno.EXDEV, errno.EINVAL})


def _relative(directory: str, joined_path: Path) -> str | None:
    """``joined_path`` relative to ``directory`` if it lies inside it lexically (Litestar's
    check, CVE-2024-32982: string operations only, no I/O); ``None`` otherwise."""
    normalized = os.path.normpath(joined_path)
    if os.path.commonpath([directory, normalized]) != directory:
        return None
    if normalized == directory:
        return "."
    return normalized[len(directory.rstrip("/")) + 1 :]


def create_static_files_router(
    path: str,
    directories: list[PathType],
    file_system: Any = None,
    send_as_attachment: bool = False,
    html_mode: bool = False,
    name: str = "static",
    after_request: AfterRequestHookHandler | None = None,
    after_response: AfterResponseHookHandler | None = None,
    before_request: BeforeRequestHookHandler | None = None,
    cache_control: CacheControlHeader | None = None,
    exception_handlers: ExceptionHandlersMap | None = None,
    guards: list[Guard] | None = None,
    include_in_schema: bool | EmptyType = False,
    middleware: Sequence[Middleware] | None = None,
    opt: dict[str, Any] | None = None,
    security: Sequence[SecurityRequirement] | None = None,
    tags: Sequence[str] | None = None,
    router_class: type[Router] = Router,
    resolve_symlinks: bool = True,
    *,
    follow_symlink: bool = False,
    cache: zcio.asgi.FileCache | bool = True,
) -> Router:
    """Litestar's ``create_static_files_router`` (the same arguments, routes, names, handlers
    and errors) serving its files with :class:`zcio_litestar.StaticFiles`.

    A mirror of Litestar 2.x's function, which builds its ``StaticFiles`` inside: the router,
    its ``GET``/``HEAD`` (and, in HTML mode, index) handlers and their names are the same.
    ``follow_symlink``: see :class:`zcio_litestar.StaticFiles` (``False``, the default, keeps
    every file beneath its directory; ``True`` follows symlinks out of it, as Litestar does).
    ``cache``: the open-file cache of :class:`zcio_litestar.StaticFiles` (``False``: none).
    """
    if file_system is None:
        file_system = BaseLocalFileSystem()

    _validate_config(path=path, directories=directories, file_system=file_system)
    path = normalize_path(path)

    headers = None
    if cache_control:
        headers = {cache_control.HEADER_NAME: cache_control.to_header()}

    static_files = StaticFiles(
        is_html_mode=html_mode,
        directories=directories,
        file_system=file_system,
        send_as_attachment=send_as_attachment,
        resolve_symlinks=resolve_symlinks,
        headers=headers,
        follow_symlink=follow_symlink,
        cache=cache,
    )

    @get("{file_path:path}", name=name)
    async def get_handler(file_path: FromPath[PurePath]) -> ASGIFileResponse:
        return await static_files.handle(path=file_path.as_posix(), is_head_response=False)

    @head("/{file_path:path}", name=f"{name}/head")
    async def head_handler(file_path: FromPath[PurePath]) -> ASGIFileResponse:
        return await static_files.handle(path=file_path.as_posix(), is_head_response=True)

    handlers = [get_handler, head_handler]

    if html_mode:

        @get("/", name=f"{name}/index")
        async def index_handler() -> ASGIFileResponse:
            return await static_files.handle(path="/", is_head_response=False)

        handlers.append(index_handler)

    return router_class(
        after_request=after_request,
        after_response=after_response,
        before_request=before_request,
        cache_control=cache_control,
        exception_handlers=exception_handlers,
        guards=guards,
        include_in_schema=include_in_schema,
        middleware=middleware,
        opt=opt,
        path=path,
        route_handlers=handlers,
        security=security,
        tags=tags,
    )


def _validate_config(path: str, directories: list[PathType], file_system: Any) -> None:
    """Litestar's checks of the router's arguments, with its messages."""
    if not path:
        raise ImproperlyConfiguredException("path must be a non-zero length string,")

    if not directories or not any(bool(d) for d in directories):
        raise ImproperlyConfiguredException("directories must include at least one path.")

    if "{" in path:
        raise ImproperlyConfiguredException("path parameters are not supported for static files")

    if not (
        callable(getattr(file_system, "info", None))
        and callable(getattr(file_system, "open", None))
    ):
        raise ImproperlyConfiguredException(
            "file_system must adhere to the FileSystemProtocol type"
        )
