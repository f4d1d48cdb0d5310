"""``install(app)``: the app's ``app.static(...)`` routes serve with zcio_sanic's ``file`` and
``file_stream``, their files opened beneath the folder.

Sanic's static handler resolves the requested path (``Path.resolve``), checks that it lies
inside the folder, then opens it again by name: a symlink swapped in between the two is
followed out of the folder. Here the resolved path (which has no symlink in it) is opened
beneath a descriptor of the served folder (:class:`zcio.Folder`, no symlink followed): a name
that meets a symlink at open time gets a 404, so nothing outside the folder is ever read. Routes
with ``follow_external_symlink_files``/``_dirs`` asked for links leading out: their files are
opened by name, as Sanic does.

Everything else (status, headers, ranges, If-Modified-Since, HEAD, directory index files and
listings, the 404 and 416 errors) is Sanic's handler, step for step.
"""

from __future__ import annotations

import functools
import os
import posixpath
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sanic.exceptions import FileNotFound, HeaderNotFound, NotFound, RangeNotSatisfiable
from sanic.handlers import ContentRangeHandler
from sanic.handlers.directory import DirectoryHandler
from sanic.log import error_logger
from sanic.mixins.static import StaticHandleMixin
from sanic.response import HTTPResponse
from sanic.response.convenience import guess_content_type, validate_file

import zcio
import zcio.asgi

from ._response import file_response, open_file, stream_response

__all__ = ["install", "static_request_handler"]

_STOCK = StaticHandleMixin._static_request_handler


def install(app: Any) -> None:
    """Make ``app``'s static routes (``app.static(...)``, blueprints' too) serve with
    :func:`zcio_sanic.file` / :func:`zcio_sanic.file_stream`, opening files beneath their
    folder. Routes already registered are switched now, later ones when the server starts
    (a ``before_server_start`` listener). Calling it again is harmless."""
    _switch_routes(app)
    if not getattr(app.ctx, "_zcio_sanic_installed", False):
        app.ctx._zcio_sanic_installed = True

        async def switch(app: Any, *_: Any) -> None:
            _switch_routes(app)

        app.register_listener(switch, "before_server_start")


def _switch_routes(app: Any) -> None:
    folders: dict[str, zcio.Folder] = app.ctx.__dict__.setdefault("_zcio_sanic_folders", {})
    for route in app.router.routes:
        handler = route.handler
        func = getattr(handler, "func", None)
        if getattr(func, "__func__", None) is not _STOCK:
            continue
        keywords = dict(handler.keywords)
        # The folder files are opened beneath: the route's folder, or a file route's folder.
        root = Path(unquote(keywords["file_or_directory"])).resolve()
        if not os.path.isdir(root):
            root = root.parent
        ours = functools.partial(static_request_handler, app, folders, root, **keywords)
        route.handler = functools.update_wrapper(ours, handler)


def _folder(folders: dict[str, zcio.Folder], root: Path) -> zcio.Folder | None:
    key = str(root)
    folder = folders.get(key)
    if folder is None:
        try:
            folder = folders[key] = zcio.Folder(root)
        except OSError:
            return None
    return folder


def _open_beneath(folder: zcio.Folder, relative: str) -> zcio.asgi.Opened:
    return zcio.asgi.Opened(*folder.open(relative))


async def _open(
    folders: dict[str, zcio.Folder], root: Path, path: Path, beneath: bool
) -> zcio.asgi.Opened:
    """``path`` (resolved, inside ``root``) opened beneath ``root`` when ``beneath``, else by
    name. Raises ``FileNotFoundError`` (:class:`zcio.OutsideFolder` too) and the open's
    ``OSError``."""
    if not beneath:
        return await open_file(path)
    folder = _folder(folders, root)
    relative = folder.relative(path) if folder is not None else None
    if folder is None or relative is None:
        raise FileNotFoundError(2, "not beneath the folder", str(path))
    if relative == ".":
        raise IsADirectoryError(21, "is a folder", str(path))
    cached = folder.open_cached(relative)
    if cached is not None:
        return zcio.asgi.Opened(*cached)
    return await zcio.asgi.open_in_thread(_open_beneath, folder, relative, abandon_on_cancel=True)


async def static_request_handler(
    app: Any,
    folders: dict[str, zcio.Folder],
    root: Path,
    request: Any,
    *,
    file_or_directory: str,
    use_modified_since: bool,
    use_content_range: bool,
    stream_large_files: bool | int,
    directory_handler: DirectoryHandler,
    follow_external_symlink_files: bool,
    follow_external_symlink_dirs: bool,
    content_type: str | None = None,
    __file_uri__: str | None = None,
) -> Any:
    """Sanic's ``_static_request_handler`` with the file opened once, beneath the folder, and
    its response from :func:`zcio_sanic.file` or :func:`zcio_sanic.file_stream`."""
    not_found = FileNotFound(
        "File not found", path=Path(file_or_directory), relative_url=__file_uri__
    )
    try:
        file_path = await app._get_file_path(
            file_or_directory,
            __file_uri__,
            not_found,
            follow_external_symlink_files,
            follow_external_symlink_dirs,
        )
    except OSError:
        # Sanic's resolve() met a name changing under it (EINVAL from readlink when a symlink
        # became a file): Sanic answers 500; nothing was servable at that moment, so 404.
        raise not_found from None
    beneath = not (follow_external_symlink_files or follow_external_symlink_dirs)
    opened: zcio.asgi.Opened | None = None
    try:
        opened = await _open(folders, root, file_path, beneath)
        stats = opened.stat
        headers: dict[str, str] = {}
        if use_modified_since:
            response = await validate_file(request.headers, stats.st_mtime)
            if response:
                opened.close()
                return response
            headers["Last-Modified"] = formatdate(stats.st_mtime, usegmt=True)
        _range = None
        if use_content_range:
            headers["Accept-Ranges"] = "bytes"
            headers["Content-Length"] = str(stats.st_size)
            if request.method != "HEAD":
                try:
                    _range = ContentRangeHandler(request, stats)
                except HeaderNotFound:
                    pass
                else:
                    del headers["Content-Length"]
                    headers.update(_range.headers)
        if "content-type" not in headers:
            content_type = content_type or guess_content_type(file_path)
            if "charset=" not in content_type and (
                content_type.startswith("text/") or content_type == "application/javascript"
            ):
                content_type += "; charset=utf-8"
            headers["Content-Type"] = content_type
        if request.method == "HEAD":
            opened.close()
            return HTTPResponse(headers=headers)
        if stream_large_files:
            threshold = 1024 * 1024 if stream_large_files is True else int(stream_large_files)
            if stats.st_size >= threshold:
                return stream_response(file_path, opened, headers=headers, _range=_range)
        return await file_response(file_path, opened, headers=headers, _range=_range)
    except (IsADirectoryError, PermissionError):
        if opened is not None:
            opened.close()
        return await _directory(folders, root, request, directory_handler, beneath)
    except RangeNotSatisfiable:
        if opened is not None:
            opened.close()
        raise
    except FileNotFoundError:
        raise not_found from None
    except Exception:
        if opened is not None:
            opened.close()
        error_logger.exception(
            "Exception in static request handler: "
            f"path={file_or_directory}, relative_url={__file_uri__}"
        )
        raise


async def _directory(
    folders: dict[str, zcio.Folder],
    root: Path,
    request: Any,
    handler: DirectoryHandler,
    beneath: bool,
) -> Any:
    """Sanic's ``DirectoryHandler.handle``, its index files opened beneath the folder. A
    subclass of ``DirectoryHandler`` (the app's own) is called as it is."""
    if type(handler) is not DirectoryHandler:
        return await handler.handle(request, request.path)
    current = unquote(request.path).strip("/")[len(handler.base) :].strip("/")
    for file_name in handler.index:
        index_file = handler.directory / current / file_name
        # Lexically inside the route's folder (resolved); the open beneath it does the rest.
        path = Path(posixpath.normpath(root / current / file_name))
        try:
            opened = await _open(folders, root, path, beneath)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            continue
        return await file_response(index_file, opened)
    if handler.directory_view:
        return handler._index(handler.directory / current, request.path, request.app.debug)
    if handler.index:
        raise NotFound("File not found")
    raise IsADirectoryError(f"{handler.directory.as_posix()} is a directory")
