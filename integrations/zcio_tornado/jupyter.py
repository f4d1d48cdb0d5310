"""A Jupyter server extension that turns :func:`zcio_tornado.install` on for the whole server.

Enable it for one run::

    jupyter server --ServerApp.jpserver_extensions='{"zcio_tornado.jupyter": True}'

or for good, with one line in ``jupyter_server_config.py``::

    c.ServerApp.jpserver_extensions = {"zcio_tornado.jupyter": True}

Then ``/files/``, ``/static/`` and kernelspec resources (jupyter_server's handlers on Tornado's
``StaticFileHandler.get``) send plaintext downloads with ``sendfile``. Loading it installs
nothing else and changes no setting.
"""

from __future__ import annotations

from typing import Any

from . import install

__all__ = ["_jupyter_server_extension_points", "_load_jupyter_server_extension"]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The entry point jupyter_server looks for: this module is the extension."""
    return [{"module": "zcio_tornado.jupyter"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by jupyter_server once, at start-up, before it serves anything."""
    install()
    serverapp.log.info("zcio_tornado: StaticFileHandler sends files with sendfile")
