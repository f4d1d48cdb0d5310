"""Finding a static file by opening it beneath its folder, for
:class:`zcio_django.ASGIStaticFilesHandler`.

Django's static-files view asks its finders whether a path exists, then ``static.serve``
stats it and opens it again by name: a symlink planted in a folder is followed out of it, a
name swapped between the checks and the open serves another file under the first one's
headers, a FIFO is opened and waited on, ``/dev/zero`` is read into memory, and a path that
leaves the folder lexically (``..``) raises ``SuspiciousFileOperation``, a 500. Here the
lookup *is* the open (:meth:`Finder.open_file`, the one place a file is opened), made once,
and the response is made from that open file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mimetypes
import os
import posixpath
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from django.contrib.staticfiles import finders
from django.core.exceptions import SuspiciousFileOperation
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotModified,
)
from django.utils._os import safe_join
from django.utils.http import http_date
from django.utils.translation import gettext as _
from django.views.static import was_modified_since

import zcio
import zcio.asgi
from zcio.asgi import NotARegularFileError, Opened

__all__ = ["Finder", "Found"]

# Names that cannot lead to a file to serve: a client's choice, a 404. EXDEV: leads out of
# the folder (zcio.Folder says so as OutsideFolder, a FileNotFoundError).
_NOT_FOUND_ERRNOS = frozenset({errno.ELOOP, errno.ENAMETOOLONG, errno.EXDEV, errno.EINVAL})


class Found(NamedTuple):
    """What a lookup found: ``path``, the absolute path Django's finders would give, and the
    regular file there, open; ``opened`` is ``None`` for a directory."""

    path: str
    opened: Opened | None


class Finder:
    """Django's static files lookup (``django.contrib.staticfiles.views.serve``, then
    ``django.views.static.serve``), each candidate opened instead of checked.

    Django's finders are asked in their order (``STATICFILES_FINDERS``); for its own
    ``FileSystemFinder`` (``STATICFILES_DIRS``, prefixes included) and
    ``AppDirectoriesFinder`` (each app's ``static/``), every location is tried in Django's
    order, the file opened there: with ``follow_symlink=False`` beneath a descriptor of the
    location (:class:`zcio.Folder`; symlinks that stay inside are followed, those leading
    out are not), with ``follow_symlink=True`` by path, as Django does. A finder of another
    class is asked for its path as Django asks it, and that path opened by name. Only a
    regular file is served (a FIFO or a device is opened without waiting and closed, never
    read; with ``follow_symlink=True`` or another finder, ``/proc`` and ``/sys`` files are
    refused too); anything else, a path leading out, or a name that cannot lead to a file
    is looked for in the next location, and a 404 if none has it.

    Runs in a worker thread (Django runs ``serve`` there): the opens may wait for a disk.
    """

    def __init__(self, *, follow_symlink: bool = False) -> None:
        self.follow_symlink = follow_symlink
        #: A :class:`zcio.Folder` per location, opened at its first lookup (or by
        #: :meth:`open_folders`), kept for the handler's life.
        self._folders: dict[str, zcio.Folder] = {}
        self._lock = threading.Lock()

    def open_folders(self) -> None:
        """Open the folders of every location now (those that exist), so that requests do
        not; harmless if the app registry is not ready yet (then it is done lazily)."""
        from django.apps import apps

        if self.follow_symlink or not apps.ready:
            return
        for finder in finders.get_finders():
            roots: list[str] = []
            if type(finder) is finders.FileSystemFinder:
                roots = [str(root) for _, root in finder.locations]
            elif type(finder) is finders.AppDirectoriesFinder:
                roots = [str(storage.location) for storage in finder.storages.values()]
            for root in roots:
                with contextlib.suppress(OSError):
                    self._folder(root)

    def serve(self, request: HttpRequest, path: str) -> HttpResponse | FileResponse:
        """The response for static file ``path`` (the URL's path below ``STATIC_URL``):
        Django's, made from the file opened by :meth:`find`. Raises ``Http404`` (with
        Django's messages) for a file not found, a directory or a name that leads nowhere;
        other ``OSError`` (no permission, an I/O error) as Django's ``open`` raises them."""
        normalized = posixpath.normpath(path).lstrip("/")
        found = self.find(normalized)
        if found is None:
            if path.endswith("/") or path == "":
                raise Http404("Directory indexes are not allowed here.")
            raise Http404(f"'{path}' could not be found")
        if found.opened is None:
            raise Http404(_("Directory indexes are not allowed here."))
        return _response(request, found.path, found.opened)

    def find(self, path: str) -> Found | None:
        """The first location, in Django's order, with a regular file or a directory at
        ``path`` (opened by :meth:`open_file`); ``None`` if there is none."""
        for finder in finders.get_finders():
            known = _locations(finder, path)
            if known is None:  # not a finder of Django's: its path, opened by name
                try:
                    matched = finder.find(path)
                except SuspiciousFileOperation:  # a path leading out of its storage
                    continue
                if matched:
                    found = self._open_by_path(str(matched))
                    if found is not None:
                        return found
                continue
            for root, relative in known:
                found = self.open_file(root, relative)
                if found is not None:
                    return found
        return None

    def open_file(self, root: str, relative: str) -> Found | None:
        """**Where a file is opened**: ``relative`` beneath the location ``root``. ``None``
        when there is nothing to serve there (missing, not a regular file, leading out of
        the location, a name that cannot lead to a file): the next location is tried."""
        try:
            path = safe_join(root, relative)  # Django's lexical check (and its path)
        except (SuspiciousFileOperation, ValueError):
            return None
        if self.follow_symlink:
            return self._open_by_path(path)
        base = os.path.abspath(root)
        inside = "." if path == base else path[len(base.rstrip("/")) + 1 :]
        try:
            return Found(path, Opened(*self._folder(root).open(inside)))
        except IsADirectoryError:
            return Found(path, None)
        except OSError as exc:
            if _nothing_there(exc):
                return None
            raise

    def _open_by_path(self, path: str) -> Found | None:
        try:
            return Found(path, zcio.asgi.open_static(path))
        except IsADirectoryError:
            return Found(path, None)
        except ValueError:  # a NUL byte
            return None
        except OSError as exc:
            if _nothing_there(exc):
                return None
            raise

    def _folder(self, root: str) -> zcio.Folder:
        folder = self._folders.get(root)
        if folder is None:
            with self._lock:
                folder = self._folders.get(root)
                if folder is None:
                    folder = self._folders[root] = zcio.Folder(root, follow_symlinks=True)
        return folder


def _nothing_there(exc: OSError) -> bool:
    """Whether an open's error means "no file to serve here" (a 404), not a server error."""
    return (
        isinstance(exc, FileNotFoundError | NotADirectoryError | NotARegularFileError)
        or exc.errno in _NOT_FOUND_ERRNOS
    )


def _locations(finder: Any, path: str) -> Iterator[tuple[str, str]] | None:
    """Where Django's own finders would look for ``path``, in their order: (location, path
    there); ``None`` for a finder of another class (or a subclass: it may look elsewhere)."""
    if type(finder) is finders.FileSystemFinder:
        return _filesystem_locations(finder, path)
    if type(finder) is finders.AppDirectoriesFinder:
        return _app_locations(finder, path)
    return None


def _filesystem_locations(finder: Any, path: str) -> Iterator[tuple[str, str]]:
    for prefix, root in finder.locations:  # FileSystemFinder.find_location's prefix rule
        if prefix:
            prefix = f"{prefix}{os.sep}"
            if not path.startswith(prefix):
                continue
            yield str(root), path.removeprefix(prefix)
        else:
            yield str(root), path


def _app_locations(finder: Any, path: str) -> Iterator[tuple[str, str]]:
    for app in finder.apps:
        storage = finder.storages.get(app)
        if storage is not None:
            yield str(storage.location), path


def _response(request: HttpRequest, path: str, opened: Opened) -> HttpResponse | FileResponse:
    """``django.views.static.serve``'s response for the file open at ``path``: a 304 if not
    modified since, else a ``FileResponse`` of that file, with Django's headers."""
    try:
        mtime = opened.stat.st_mtime
        if not was_modified_since(request.META.get("HTTP_IF_MODIFIED_SINCE"), mtime):
            opened.close()
            return HttpResponseNotModified()
        content_type, encoding = mimetypes.guess_type(path)
        opened.file.name = path  # what Django's open names it
        response = FileResponse(
            io.BufferedReader(opened.file), content_type=content_type or "application/octet-stream"
        )
        response.headers["Last-Modified"] = http_date(mtime)
        if encoding:
            response.headers["Content-Encoding"] = encoding
        return response
    except BaseException:
        opened.close()
        raise
