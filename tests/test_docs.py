"""The README shows the examples as they are in examples/ (which their own tests run)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("name", ["proxy_trio.py", "proxy_asyncio.py"])
def test_readme_shows_the_tested_example(name: str) -> None:
    assert (ROOT / "examples" / name).read_text() in (ROOT / "README.md").read_text()


def test_docs_snippet_includes_point_at_files() -> None:
    """Every ``--8<--`` include in docs/ names a file that exists (and survived formatting)."""
    import re

    for page in (ROOT / "docs").glob("*.md"):
        text = page.read_text()
        assert "--8 <" not in text, page
        for target in re.findall(r'^--8<-- "([^"]+)"$', text, re.MULTILINE):
            assert (ROOT / target).is_file(), (page, target)
