"""`python -m bench`: what it says before measuring anything (the runs themselves are timed
by hand, never in the suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_peers_without_the_bench_extra_says_what_to_install_before_running_anything(tmp_path: Path) -> None:
    without = ("import runpy, sys\n"
               "for name in ('huey', 'rq'): sys.modules[name] = None  # as if not installed\n"
               f"sys.argv = ['bench', '--peers', '--quick', '--out', {str(tmp_path / 'peers.json')!r}]\n"
               "runpy.run_module('bench', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", without], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    missing = done.stderr.split("missing here: ", 1)[1].split(";", 1)[0].split(", ")
    assert {"huey", "rq"} <= set(missing)  # (and any other peer this environment lacks)
    assert done.stderr.rstrip().endswith("pip install -e '.[bench]'")
    assert "Traceback" not in done.stderr and not (tmp_path / "peers.json").exists()


def test_peers_render_rebuilds_the_ratio_tables_from_the_stored_results() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--peers", "--render"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "| activejob ÷ peer | on SQLite | on PostgreSQL |" in done.stdout
    assert "drain, `def perform` ÷ huey (default)" in done.stdout
