"""``StaticFiles`` and ``create_static_files_router``: Litestar's, serving every file through
:class:`zcio_litestar.ASGIFileResponse`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from litestar.exceptions import ImproperlyConfiguredException
from litestar.file_system import BaseLocalFileSystem
from litestar.handlers import get, head
from litestar.params import FromPath
from litestar.router import Router
from litestar.static_files import StaticFiles as LitestarStaticFiles
from litestar.utils import normalize_path

import zcio

from ._response import LOCAL_INFO, ASGIFileResponse, adopt, file_info

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
    from litestar.types.file_types import FileInfo

__all__ = ["StaticFiles", "create_static_files_router"]


class StaticFiles(LitestarStaticFiles):
    """Litestar's ``StaticFiles`` ASGI app (same constructor, lookups, HTML mode, 404s and
    405s) whose file responses are :class:`zcio_litestar.ASGIFileResponse`, by
    ``zerocopysend`` (the file the response opens, as Litestar opens it) and never by
    ``pathsend`` (a path the server would open again, later, after the lookup checked it): on a
    server that offers only ``pathsend`` (granian), Litestar reads the file. Errors and
    cancellation are Litestar's lookups' and the response's."""

    __slots__ = ()

    async def get_fs_info(
        self, directories: Sequence[PathType], file_path: PathType
    ) -> tuple[Path, FileInfo] | tuple[None, None]:
        """Litestar's lookup, with its containment check, in the same order of directories.

        On Litestar's local file system, a regular file the kernel can open from its caches
        (:func:`zcio.open_cached_stat`) is looked up on the event loop, to the same
        ``FileInfo``; anything else (not cached, a directory, a symbolic link, missing, another
        file system) is Litestar's own lookup in worker threads."""
        if type(self.adapter.file_system).info is not LOCAL_INFO:
            return await super().get_fs_info(directories, file_path)
        for directory in directories:
            joined_path = Path(directory, file_path)
            if not _inside(directory, joined_path):
                continue
            opened = zcio.open_cached_stat(joined_path)
            if opened is not None:
                file, st = opened
                try:
                    info = file_info(str(joined_path), st)
                finally:
                    file.close()
                if info is not None:
                    return joined_path, info
            found = await super().get_fs_info([directory], file_path)
            if found[0] is not None:
                return found
        return None, None

    async def handle(self, path: str, is_head_response: bool) -> ASGIFileResponse:
        # Never by pathsend: the server would open the path again, after the lookup checked it.
        return adopt(await super().handle(path, is_head_response), pathsend=False)


def _inside(directory: PathType, joined_path: Path) -> bool:
    """Litestar's containment check (CVE-2024-32982): string operations only, no I/O."""
    normalized = os.path.normpath(joined_path)
    return os.path.commonpath([directory, normalized]) == str(directory)


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
) -> Router:
    """Litestar's ``create_static_files_router`` (the same arguments, routes, names, handlers
    and errors) serving its files with :class:`zcio_litestar.StaticFiles`.

    A mirror of Litestar 2.x's function, which builds its ``StaticFiles`` inside: the router,
    its ``GET``/``HEAD`` (and, in HTML mode, index) handlers and their names are the same.
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
