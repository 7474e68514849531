"""The framework how-tos (FastAPI, Flask, Django) do what they print: each page's code is run
as one script, as tests/test_docs_examples.py runs it, and what it prints is checked against
the values the page shows in its comments. Their packages are in the dev extra, so a missing
one is a failure here, not a skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_docs_examples import python_blocks

ROOT = Path(__file__).resolve().parents[1]


def run_page(name: str, tmp_path: Path) -> list[str]:
    script = tmp_path / "page.py"
    script.write_text("\n\n".join(python_blocks((ROOT / "docs" / "howto" / name).read_text())))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACTIVEJOB_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=50)
    assert done.returncode == 0, f"{name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout.splitlines()


def test_the_fastapi_page_runs_a_job_enqueued_through_its_endpoint(tmp_path: Path) -> None:
    assert run_page("fastapi.md", tmp_path) == ["{'status': 'completed', 'progress': None, 'result': {'sent': True}}"]


def test_the_flask_page_runs_a_job_enqueued_through_its_endpoint(tmp_path: Path) -> None:
    assert run_page("flask.md", tmp_path) == [
        "pending",
        "{'progress': 1.0, 'result': {'image_id': 7, 'width': 400}, 'status': 'completed'}",
        "422",
    ]


def test_the_django_page_writes_jobs_at_commit_and_drops_them_on_rollback(tmp_path: Path) -> None:
    assert run_page("django.md", tmp_path) == [
        "sqlite:///site.sqlite3",
        "None",
        "1 pending",
        "False None",
        "{'welcomed': 'ada'}",
    ]
