"""The README shows the examples as they are in examples/ (which their own tests run)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", ["proxy_trio.py", "proxy_asyncio.py"])
def test_readme_shows_the_tested_example(name: str) -> None:
    assert (ROOT / "examples" / name).read_text() in (ROOT / "README.md").read_text()
