"""The README's and the docs' Python examples run, page by page, as written.

Each page's ```python blocks are joined in order into one script and run in a fresh
directory (its own SQLite files). A block right after `<!-- norun -->` is left out (files
the page shows, sketches that need a server). A page whose example needs a package that
is not installed here (FastAPI, Flask) is skipped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def python_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    skip = False
    lines = iter(text.splitlines())
    for line in lines:
        stripped = line.strip()
        fence = re.match(r"^(\s*)```python\b", line)
        if fence:
            indent = len(fence.group(1))
            body = []
            for inner in lines:
                if inner.strip().startswith("```"):
                    break
                body.append(inner[indent:])
            if not skip:
                blocks.append("\n".join(body))
            skip = False
        elif stripped == "<!-- norun -->":
            skip = True
        elif stripped:
            skip = False
    return blocks


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page: Path, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text("\n\n".join(python_blocks(page.read_text())))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTIVEJOB_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=50)
    missing = re.search(r"ModuleNotFoundError: No module named '(fastapi|flask)'", done.stderr)
    if missing:
        pytest.skip(f"{missing.group(1)} is not installed")
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
