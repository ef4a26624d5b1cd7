"""The tutorials' code runs: every ```python block of each docs/tutorials/*.md page, in order, in one
namespace, in a temporary directory, at the tiny scale the page declares in its
``<!-- test-scale: NAME=value ... -->`` comment (each NAME must be assigned once at the start of a line
in the page's code, so the comment and the code cannot drift apart). A page with
``<!-- test-requires: lava -->`` is marked ``lava`` (skipped without the Lava runtime, required in CI).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def page_code(text: str) -> str:
    """The page's python blocks with the declared test-scale values substituted."""
    code = "\n".join(BLOCK.findall(text))
    m = re.search(r"<!-- test-scale: (.*?) -->", text)
    for pair in (m.group(1).split() if m else []):
        name, value = pair.split("=", 1)
        code, n = re.subn(rf"^{name} = .*$", f"{name} = {value}", code, count=1, flags=re.M)
        assert n == 1, f"test-scale names {name}, which the page's code does not assign"
    return code


def _param(page: Path):
    marks = [pytest.mark.lava] if "<!-- test-requires: lava -->" in page.read_text() else []
    return pytest.param(page, id=page.stem, marks=marks)


def test_every_tutorial_has_code():
    assert len(PAGES) >= 6
    for page in PAGES:
        assert BLOCK.search(page.read_text()), page


@pytest.mark.parametrize("page", [_param(p) for p in PAGES])
def test_tutorial_runs(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    code = page_code(page.read_text())
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(page), "exec"), {"__name__": "__tutorial__"})
