"""`python -m example_app.pg` (what `make example-pg` runs): the example on PostgreSQL, its
jobs run by separate worker processes.

    python -m example_app.pg [--database-url postgresql://postgres@127.0.0.1:5432/test]
                             [--workers 2] [--host 127.0.0.1] [--port 8000]

The web app only enqueues and reads; `activejob worker --processes N` (a supervisor and its
N worker processes) runs the jobs, including the nightly cleanup's cron schedule. Ctrl-C (or
SIGTERM) stops the server, then the workers, which let running jobs finish first.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import uvicorn

from .app import DASHBOARD_PATH, create_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parents[1]  # where example_app is importable from


def start_workers(url: str, processes: int) -> subprocess.Popen[bytes]:
    """`activejob worker` on `url` with the example's jobs, in `processes` processes."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "activejob", "worker", "--database-url", url, "--import", "example_app.jobs",
            "--processes", str(processes), "--poll-interval", "0.5", "--shutdown-grace", "5"]
    # A session of their own: Ctrl-C in the terminal reaches this process only, which then
    # stops the workers with one SIGTERM (a second signal would stop them at once).
    return subprocess.Popen(argv, env=env, start_new_session=True)


def stop_workers(workers: subprocess.Popen[bytes]) -> None:
    if workers.poll() is None:
        workers.send_signal(signal.SIGTERM)  # the supervisor passes it on to its workers
        try:
            workers.wait(timeout=30)
        except subprocess.TimeoutExpired:
            workers.kill()
            workers.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m example_app.pg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("EXAMPLE_PG_URL", DEFAULT_URL),
                        help=f"PostgreSQL URL (default: $EXAMPLE_PG_URL, else {DEFAULT_URL})")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(args.database_url, run_worker=False)  # migrates the database before the workers start
    url = f"http://{args.host}:{args.port}/"
    print(f"activejob example on PostgreSQL: open {url}", flush=True)
    if app.state.dashboard:
        print(f"dashboard:         {url.rstrip('/')}{DASHBOARD_PATH}/", flush=True)
    print(f"database:          {app.state.queue.database_url}, {args.workers} worker processes (Ctrl-C to stop)",
          flush=True)
    workers = start_workers(args.database_url, args.workers)
    for signum in (signal.SIGINT, signal.SIGTERM):
        # uvicorn stops on the signal, then raises it again once it has restored this handler:
        # ignoring it there lets the `finally` stop the workers, and the process exit normally.
        signal.signal(signum, lambda *_: None)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        stop_workers(workers)


if __name__ == "__main__":
    main()
