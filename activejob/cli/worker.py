"""`activejob worker`: run jobs in this process, or supervise several worker processes."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..supervisor import Supervisor
from .errors import InvalidSetting
from .options import (
    auto_migrate_option,
    import_modules,
    imports_option,
    open_queue,
    settings_for,
    url_option,
    usable_url,
)
from .schema import require_schema


def _queue_list(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """`--queues` names at least one queue: an empty list (`--queues "$QUEUES"` with QUEUES
    unset) would otherwise mean every queue, the opposite of what was asked."""
    if value is not None and not any(part.partition(":")[0].strip() for part in value.split(",")):
        raise click.BadParameter(f"no queue named in {value!r}: give at least one queue name, or '*' for "
                                 "every queue (as leaving --queues out does)")
    return value


@click.command()
@url_option
@imports_option
@click.option("--concurrency", "-c", type=int, default=None, help="Jobs at once per process (default 10).")
@click.option("--queues", "-q", default=None, callback=_queue_list,
              help="Comma-separated queues to take jobs from (default: all); 'mail:2' caps mail at 2 at once.")
@click.option("--poll-interval", type=float, default=None, help="Seconds between polls when nothing wakes us.")
@click.option("--queue-rate-limit", "queue_rate_limit", multiple=True, metavar="QUEUE=LIMIT",
              help="At most LIMIT starts of QUEUE's jobs over all workers, e.g. mail=100/m (repeatable).")
@click.option("--lease", type=float, default=None, help="Seconds a job stays ours without a heartbeat.")
@click.option("--shutdown-grace", type=float, default=None, help="Seconds running jobs get on SIGTERM.")
@click.option("--cancel-grace", type=float, default=None,
              help="Seconds a sync job gets to notice a cancel or shutdown before the worker stops waiting.")
@click.option("--sqlite-synchronous", type=click.Choice(["NORMAL", "FULL"], case_sensitive=False), default=None,
              help="How durable a SQLite commit is (default NORMAL; FULL also survives a power loss).")
@click.option("--processes", "-p", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes to run (at least 1).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on this port (needs the metrics extra).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics are served on.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, with job_id, job_name and attempt.")
@auto_migrate_option
def worker(database_url: str | None, imports: tuple[str, ...], concurrency: int | None, queues: str | None,
           poll_interval: float | None, lease: float | None, shutdown_grace: float | None,
           cancel_grace: float | None, sqlite_synchronous: str | None, processes: int,
           metrics_port: int | None = None, metrics_host: str = "127.0.0.1", log_format: str = "text",
           queue_rate_limit: tuple[str, ...] = (), auto_migrate: bool | None = None) -> None:
    """Run jobs until SIGTERM/SIGINT (a second signal stops at once)."""
    from .. import logs

    logs.install(json_lines=log_format == "json")  # every record says which job it is about
    logging.getLogger("activejob").setLevel(min(logging.getLogger().level, logging.INFO))
    options = {"concurrency": concurrency, "queues": queues, "poll_interval": poll_interval, "lease": lease,
               "shutdown_grace": shutdown_grace, "cancel_grace": cancel_grace, "sqlite_synchronous": sqlite_synchronous,
               "queue_rate_limits": _queue_rate_limits(queue_rate_limit)}
    # Checked here, before any child starts: each of N children would only fail the same way.
    # The supervisor knows only the option (the imported modules' setting, in the children).
    url = usable_url(settings_for(database_url, **options).database_url, create=auto_migrate is not False)
    if processes > 1 and metrics_port is not None:
        raise InvalidSetting("--metrics-port serves one process's counters: with --processes N, start N "
                             "workers each with its own --metrics-port, or scrape the dashboard's /metrics")
    if processes > 1:
        require_schema(url, why="auto-migrate is off") if auto_migrate is False else _reachable(url)
        # Children get the same command line: the group's options (-v), then the worker's.
        at = sys.argv.index("worker", 1) if "worker" in sys.argv[1:] else 1
        argv = _strip_processes(sys.argv[at + 1:])
        supervisor = Supervisor(argv, processes, global_argv=sys.argv[1:at])
        code = supervisor.run()
        if supervisor.failure:
            click.echo(f"Error: {supervisor.failure}", err=True)
        sys.exit(code)
    import_modules(imports)
    queue = open_queue(database_url, auto_migrate=auto_migrate, **options)
    from ..definition import registry

    if not registry:
        logging.getLogger("activejob").warning(
            "no job types are registered: this worker can run nothing until job modules are imported "
            "(--import MODULE or ACTIVEJOB_IMPORT)")
    metrics = _serve_metrics(queue, metrics_host, metrics_port) if metrics_port is not None else None
    try:
        queue.work()
    finally:
        if metrics is not None:
            metrics.close()


def _queue_rate_limits(given: tuple[str, ...]) -> dict[str, str] | None:
    """--queue-rate-limit mail=100/m ... as the setting (checked by it)."""
    limits = {}
    for entry in given:
        queue, sep, limit = entry.partition("=")
        if not sep or not queue.strip():
            raise InvalidSetting(f"--queue-rate-limit takes QUEUE=LIMIT such as mail=100/m, got {entry!r}")
        limits[queue.strip()] = limit.strip()
    return limits or None


def _serve_metrics(queue: Any, host: str, port: int) -> Any:
    """This worker's Prometheus metrics, served on host:port until the worker stops."""
    try:
        from ..metrics import WorkerMetrics
    except ImportError as error:
        raise InvalidSetting(f"--metrics-port needs the metrics extra: pip install 'activejob[metrics]' "
                             f"({error})") from None
    metrics = WorkerMetrics(queue)
    try:
        server, _thread = metrics.serve(port, host=host)
    except OSError as error:
        metrics.close()
        raise InvalidSetting(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
    logging.getLogger("activejob").info("metrics at http://%s:%d/metrics", host, server.server_port)
    return metrics


def _reachable(url: str) -> None:
    """Connect once (a SQLite file is created), so a database that cannot be used stops the
    command now, not each of the supervisor's children in turn."""
    from ..store import Store

    store = Store(url)
    try:
        with store.engine.connect():
            pass
    finally:
        store.dispose()


def _strip_processes(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--processes", "-p"):
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        out.append(arg)
    return out
