"""A real jupyter_server (a subprocess) with ``zcio_tornado.jupyter`` enabled by the one line
of ``jupyter_server_config.py`` the docs give, serving ``/files/`` to a client that presents
its token: the bytes arrive whole (files larger than the socket buffers, ranges), by sendfile,
and a client without the token gets nothing.

tests/apps/jupyter_stats.py is a second extension that reports zcio's counters at /zcio-stats.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import free_port, make_data, sha, stop_server, wait_for_server

pytest.importorskip("jupyter_server")

APPS = Path(__file__).parent / "apps"
DATA = make_data(5 * 1024 * 1024 + 11, seed=231)
TOKEN = "zcio-tornado-test-token"
CONFIG = 'c.ServerApp.jpserver_extensions = {"zcio_tornado.jupyter": True, "jupyter_stats": True}\n'


@dataclass
class Jupyter:
    url: str
    proc: subprocess.Popen[str]

    def stats(self, client: httpx.Client) -> dict[str, Any]:
        return dict(client.get(self.url + "/zcio-stats").json())


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    base = tmp_path_factory.mktemp("jupyter")
    root, config = base / "notebooks", base / "config"
    (root / "data").mkdir(parents=True)
    config.mkdir()
    (root / "data" / "model.bin").write_bytes(DATA)
    (config / "jupyter_server_config.py").write_text(CONFIG)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ZCIO_DISABLE"}
    env.update(
        HOME=str(base),
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_DATA_DIR=str(base / "data"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONPATH=os.pathsep.join([str(APPS), env.get("PYTHONPATH", "")]),
    )
    args = [
        *(sys.executable, "-m", "jupyter_server", "--no-browser", f"--port={port}"),
        *("--ip=127.0.0.1", f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}"),
        *("--ServerApp.port_retries=0", "--ServerApp.allow_root=True"),
    ]
    proc = subprocess.Popen(
        args, env=env, cwd=base, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(proc, url + "/api", name="jupyter_server", timeout=90)
    yield Jupyter(url, proc)
    stop_server(proc)


def test_files_by_sendfile_to_a_client_with_the_token_and_to_no_other(jupyter: Jupyter) -> None:
    auth = {"Authorization": f"token {TOKEN}"}
    with httpx.Client(headers=auth, timeout=60) as client:
        before = jupyter.stats(client)
        assert before["installed"] is True
        whole = client.get(jupyter.url + "/files/data/model.bin")
        assert whole.status_code == 200 and sha(whole.content) == sha(DATA)
        part = client.get(
            jupyter.url + "/files/data/model.bin", headers={"Range": "bytes=1000-4000000"}
        )
        assert part.status_code == 206 and sha(part.content) == sha(DATA[1000:4000001])
        download = client.get(jupyter.url + "/files/data/model.bin?download=1")
        assert "attachment" in download.headers["content-disposition"]
        assert sha(download.content) == sha(DATA)
        after = jupyter.stats(client)
    moved = after["bytes"].get("sendfile", 0) - before["bytes"].get("sendfile", 0)
    assert moved >= 2 * len(DATA) + 4000000 - 1000, (before, after)
    assert after["counts"]["sendfile"] - before["counts"].get("sendfile", 0) == 3
    # One test, not two: xdist would start a jupyter_server (seconds) for each.
    answer = httpx.get(jupyter.url + "/files/data/model.bin", timeout=60)
    assert answer.status_code in (302, 403), answer.status_code
    assert sha(answer.content) != sha(DATA) and len(answer.content) < len(DATA)
