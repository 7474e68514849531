"""The no-op job as a procrastinate task (sync), for `procrastinate --app=bench.peer_procrastinate.app`.

The connection string comes from BENCH_PROCRASTINATE_DSN. The worker process uses the app as
is (an async psycopg connector; procrastinate runs a sync task on a thread); the benchmark
process opens it synchronously to defer jobs, as a sync web app would.
"""

from __future__ import annotations

import os

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PROCRASTINATE_DSN", "")))


@app.task(name="bench_noop", queue="bench")
def noop() -> None:
    return None
