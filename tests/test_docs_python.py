"""
Python the docs show runs: each ```python block of a notebook-style page, in order, and the ```text block after it is its output.

The blocks of a page run in one namespace, one after another, in a folder holding a copy of the
repository's ``scenarios/`` (a block may write files there, as a notebook cell would). A
```text block right after a ```python block is exactly what that block prints. After an intended
change, regenerate the outputs with ``STACKSIM_UPDATE_GOLDEN=1 python3 -m pytest tests/test_docs_python.py``
and review the diff.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [ROOT / "docs" / "how-to" / "script-stacksim-from-python.md"]
"""Pages whose ```python blocks are a notebook the suite runs."""

CELL = re.compile(r"```python\n(?P<code>.*?)```\n(?:\n```text\n(?P<output>.*?)```\n)?", re.DOTALL)


def cells(text: str) -> list[re.Match[str]]:
    """Every ```python block of *text*, with the ```text block right after it if there is one."""
    return list(CELL.finditer(text))


def test_the_python_how_to_is_a_notebook() -> None:
    """The Python how-to has python blocks, each followed by the text block of its output."""
    found = cells(NOTEBOOKS[0].read_text(encoding="utf-8"))
    assert len(found) >= 8
    assert [m.start() for m in found if m["output"] is None] == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("page", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_each_cell_prints_what_the_page_shows(page: Path, tmp_path: Path) -> None:
    """Each python block, run in order in one namespace beside the scenarios, prints exactly the text block after it."""
    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")
    text = page.read_text(encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "__notebook__"}
    new = text
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        for n, m in enumerate(cells(text), start=1):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(m["code"], f"{page.name} cell {n}", "exec"), namespace)
            if os.environ.get("STACKSIM_UPDATE_GOLDEN"):
                new = new.replace(m.group(0), f"```python\n{m['code']}```\n\n```text\n{out.getvalue()}```\n", 1)
            else:
                assert out.getvalue() == (m["output"] or ""), f"{page.name}: cell {n} printed something else"
    finally:
        os.chdir(old)
    if new != text:
        page.write_text(new, encoding="utf-8")
