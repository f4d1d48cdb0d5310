"""What a newcomer meets first: true error messages, counters with every row, a metrics
endpoint, and ``zcio bench`` with no group."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

import zcio
import zcio_starlette
from zcio_cli import _bench, main

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_an_fd_less_file_object_is_not_called_closed(tmp_path: Path) -> None:
    a, b = socket.socketpair()
    path = tmp_path / "f"
    path.write_bytes(b"hello")
    with a, b:
        a.setblocking(False)
        with pytest.raises(TypeError, match="BytesIO has no file descriptor"):
            await zcio.send_file(a, io.BytesIO(b"hello"))
        with pytest.raises(TypeError, match="BytesIO has no file descriptor"):
            await zcio.send_file(io.BytesIO(), path)
        closed = open(path, "rb")  # noqa: SIM115
        closed.close()
        with pytest.raises(ValueError, match=r"file object \(BufferedReader\) is closed"):
            await zcio.send_file(a, closed)


async def test_a_directory_or_device_is_named(tmp_path: Path) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        with pytest.raises(ValueError, match=r"regular file; '.*' is a directory") as caught:
            await zcio.send_file(a, str(tmp_path))
        assert "other" not in str(caught.value)
        fd = os.open("/dev/null", os.O_RDONLY)
        try:
            with pytest.raises(ValueError, match="is a character device"):
                await zcio.send_file(a, fd)
        finally:
            os.close(fd)


def test_plan_reasons_do_not_repeat_the_method() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        with client:
            plan = zcio.plan(__file__, client)
    for skipped in plan.passed_over:
        assert not skipped.why.startswith(str(skipped.method)), skipped
    assert plan.reason_against(zcio.Method.SPLICE).why == (  # type: ignore[union-attr]
        "from a regular file, sendfile moves the same bytes without a pipe"
    )
    assert "also:" not in str(plan)


def test_every_method_has_a_row_from_the_start() -> None:
    code = "import zcio; s = zcio.stats(); print(sorted(s.methods), s.methods['sendfile'].bytes)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = sorted(str(m) for m in zcio.Method)
    assert out.stdout.strip() == f"{names} 0"


def test_prometheus_text_lists_every_series() -> None:
    text = zcio.stats().prometheus()
    for method in zcio.Method:
        for metric in ("transfers", "calls", "bytes", "offloaded_calls"):
            assert f'zcio_{metric}_total{{method="{method}"}} ' in text
    for reason in zcio.Reason:
        if reason is not zcio.Reason.NOT_OFFERED:  # a plan's reason, never a fallback's
            assert f'zcio_fallbacks_total{{reason="{reason.name.lower()}"}} ' in text
    for line in text.splitlines():  # the exposition format: comments or "name{labels} value"
        assert line.startswith("# ") or line.rsplit(" ", 1)[1].isdigit(), line


async def test_zcio_stats_endpoint_says_whether_zero_copy_is_on(tmp_path: Path) -> None:
    app = Starlette(routes=[Route("/metrics", zcio_starlette.ZcioStats())])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        got = await client.get("/metrics")
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/plain; version=0.0.4")
        first = got.text.splitlines()[0]
        assert "zero-copy file responses here: off" in first
        assert "does not advertise http.response.zerocopysend" in first
        assert 'zcio_bytes_total{method="sendfile"}' in got.text
        assert (await client.post("/metrics")).status_code == 405
        assert (await client.head("/metrics")).status_code == 200


async def test_zcio_stats_counts_what_a_real_server_sent(tmp_path: Path) -> None:
    """On zcio_uvicorn the endpoint says "on", and counts a file response's bytes."""
    import uvicorn

    import zcio_uvicorn

    (tmp_path / "f.bin").write_bytes(os.urandom(300_000))
    app = Starlette(
        routes=[
            Route("/metrics", zcio_starlette.ZcioStats()),
            Route("/f", lambda r: zcio_starlette.FileResponse(tmp_path / "f.bin")),
        ]
    )
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=zcio_uvicorn.HttpToolsProtocol, log_level="warning")
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        with anyio.fail_after(20):
            while not server.started:
                await anyio.sleep(0.05)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                before = zcio.stats()
                assert len((await client.get("/f")).content) == 300_000
                assert (zcio.stats() - before).bytes("sendfile") == 300_000
                text = (await client.get("/metrics")).text
        assert "zero-copy file responses here: on" in text.splitlines()[0]
        server.should_exit = True
    sock.close()


def test_bench_without_a_group_parses_and_runs_all() -> None:
    from zcio_cli import _parser
    from zcio_cli._bench_table import SCRIPTS

    for argv in (["bench", "--smoke"], ["bench", "--quick"], ["bench"]):
        args = _parser().parse_args(argv)
        assert args.groups == []
        assert _bench._scripts(args.groups) == list(SCRIPTS)


def test_bench_unknown_group_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nope"]) == 2
    err = capsys.readouterr().err
    from zcio_cli._bench_table import GROUPS

    choices = ", ".join(sorted(GROUPS))
    assert err.strip() == f"zcio bench: error: unknown group 'nope' (choose from {choices})"


def test_serve_bad_host_says_it_once(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["serve", str(tmp_path), "--host", "no-such-host.invalid", "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "zcio serve: error: cannot listen on no-such-host.invalid:0: unknown host"
    )
    assert "while attempting" not in err and err.count("no-such-host") == 1


def test_help_describes_every_serve_and_proxy_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in (
        "the folder to serve",
        "the event loop",
        "uvicorn's HTTP parser",
        "worker processes",
    ):
        assert words in text
    with pytest.raises(SystemExit):
        main(["proxy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "runs on (default: asyncio)" in text
