"""The `activejob` command: run workers, migrate, inspect and control jobs.

    activejob worker --database-url sqlite:///jobs.db --import myapp.jobs --concurrency 8
    activejob db upgrade
    activejob jobs --status failed
    activejob dashboard --port 8000
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from .config import ENV_URL, Settings
from .errors import ActiveJobError, ConfigurationError
from .supervisor import EX_CONFIG, USAGE_ERROR, Supervisor

_url = click.option("--database-url", envvar=ENV_URL, default=None, show_envvar=True,
                    help="Database URL (default: sqlite:///activejob.db in the working directory).")
_imports = click.option("--import", "imports", multiple=True, envvar="ACTIVEJOB_IMPORT",
                        help="Module that defines jobs (repeatable).")


# Mistakes in the configuration: their message alone, no traceback, and an exit code that
# tells the supervisor (or a process manager) that starting again will not help.
class _InvalidSetting(click.ClickException):
    exit_code = USAGE_ERROR


class _ImportFailed(click.ClickException):
    exit_code = EX_CONFIG


def _import(modules: tuple[str, ...]) -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, so app modules import
    for name in modules:
        for part in name.split(","):
            if part.strip():
                try:
                    importlib.import_module(part.strip())
                except Exception as error:  # a module's own code can fail in any way
                    raise _ImportFailed(f"cannot import {part.strip()!r}: {_import_error(error)}") from None


def _import_error(error: Exception) -> str:
    """The error and the module-level line that raised it: enough to find a typo or a missing
    dependency in the app's modules without a traceback through importlib."""
    if isinstance(error, SyntaxError):
        return str(error)  # it names the file and line already
    text = str(error) if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"
    lines = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.name == "<module>"]
    if lines:
        text += f" ({lines[-1].filename}, line {lines[-1].lineno})"
    return text


@contextmanager
def _valid_settings() -> Iterator[None]:
    try:
        yield
    except ConfigurationError as error:
        raise _InvalidSetting(str(error)) from None


def _settings(url: str | None, **options: Any) -> Settings:
    with _valid_settings():
        return Settings.build(database_url=url, **{k: v for k, v in options.items() if v is not None})


# The long-running commands make a SQLite file that does not exist yet, as the app's own
# `activejob.configure()` does: started side by side on a new project, neither waits for the
# other. Every other command only reads or changes what is there, so a missing file is a typo.
_MAY_CREATE_SQLITE = frozenset({"worker", "dashboard"})


def _queue(url: str | None, *, create: bool | None = None, **options: Any) -> Any:
    """The queue for this command; `create`: a missing SQLite file may be made (and migrated),
    by default if the command is one of _MAY_CREATE_SQLITE."""
    from .queue import JobQueue

    if create is None:
        create = click.get_current_context().info_name in _MAY_CREATE_SQLITE
    configured = JobQueue.configured()
    if configured is not None and configured.settings.recurring and options.get("recurring") is None:
        # Schedules the imported modules declared (configure(recurring=[...])) have no option
        # here: the queue made for this command keeps them.
        options["recurring"] = configured.settings.recurring
    if configured is not None and configured.settings.middleware and options.get("middleware") is None:
        options["middleware"] = configured.settings.middleware  # likewise configure(middleware=[...])
    _usable(_settings(url, **options).database_url, create=create)
    with _valid_settings():
        return JobQueue.configure(url, **{k: v for k, v in options.items() if v is not None})


_BACKENDS = "SQLite (sqlite:///jobs.db) or PostgreSQL (postgresql://user@host/app)"


def _usable(url: str, *, create: bool) -> str:
    """`url` if activejob can use it: a SQLite or PostgreSQL URL, and for SQLite a file that
    exists unless this command may create it. A mistyped path would otherwise make, and
    migrate, a new empty database, and `jobs` would calmly list nothing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .dialects import normalize_url

    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise click.ClickException(f"{url!r} is not a database URL: activejob runs on {_BACKENDS}") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise click.ClickException(
            f"unsupported database {backend!r} ({shown}): activejob runs on {_BACKENDS}")
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:") or "uri" in parsed.query
    if backend == "sqlite" and not create and not in_memory and not Path(database).exists():
        raise click.ClickException(
            f"no SQLite database at {Path(database).resolve()}: check --database-url (or {ENV_URL}); "
            "`activejob db upgrade` or a worker creates it")
    return url


@contextmanager
def _database_errors() -> Iterator[None]:
    """A database that cannot be reached, does not exist or cannot be opened: one line, exit 1."""
    from sqlalchemy.exc import InterfaceError, NoSuchModuleError, OperationalError

    try:
        yield
    except (OperationalError, InterfaceError) as error:
        reason = " ".join(str(error.orig if error.orig is not None else error).split())
        raise click.ClickException(f"cannot use the database: {reason}") from None
    except NoSuchModuleError as error:
        raise click.ClickException(f"unsupported database: {error}; activejob runs on {_BACKENDS}") from None


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _echo_line(data: Any) -> None:
    click.echo(json.dumps(data, default=str))  # one document a line, for a stream


_F = TypeVar("_F", bound=Callable[..., Any])


def _json_option(*, table_by_default: bool) -> Callable[[_F], _F]:
    """`--json` and `--table` on a read command. Commands that always printed JSON (stats, show,
    workers, types) still do when their output goes to a pipe or file, so scripts keep working;
    on a terminal they print a table."""
    def decorate(command: _F) -> _F:
        command = click.option("--table", "as_table", is_flag=True,
                               help="Print a table (for people).")(command)
        default = "table" if table_by_default else "a table on a terminal, else JSON"
        return click.option("--json", "as_json", is_flag=True,
                            help=f"Print JSON (for scripts); default: {default}.")(command)
    return decorate


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _wants_json(as_json: bool, as_table: bool, *, table_by_default: bool) -> bool:
    if as_json and as_table:
        raise click.UsageError("--json and --table: pick one")
    if as_json or as_table:
        return as_json
    return not (table_by_default or _stdout_is_terminal())


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(headers), *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S")


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal (no such job, a job in the wrong state, a bad queue name) is the user's to
    fix: show its message and exit 1, not a traceback."""
    try:
        yield
    except (ActiveJobError, ValueError) as error:
        raise click.ClickException(str(error)) from None


class _Commands(click.Group):
    """Every command's database errors are reported as one line (see _database_errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        with _database_errors():
            return super().invoke(ctx)


@click.group(cls=_Commands)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="activejob")
def main(verbose: int) -> None:
    """Background jobs in your own database."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@_url
@_imports
@click.option("--concurrency", "-c", type=int, default=None, help="Jobs at once per process (default 10).")
@click.option("--queues", "-q", default=None,
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
@click.option("--processes", "-p", type=int, default=1, show_default=True, help="Worker processes to run.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve Prometheus metrics on this port (needs the metrics extra).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics are served on.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line, with job_id, job_name and attempt.")
def worker(database_url: str | None, imports: tuple[str, ...], concurrency: int | None, queues: str | None,
           poll_interval: float | None, lease: float | None, shutdown_grace: float | None,
           cancel_grace: float | None, sqlite_synchronous: str | None, processes: int,
           metrics_port: int | None = None, metrics_host: str = "127.0.0.1", log_format: str = "text",
           queue_rate_limit: tuple[str, ...] = ()) -> None:
    """Run jobs until SIGTERM/SIGINT (a second signal stops at once)."""
    from . import logs

    logs.install(json_lines=log_format == "json")  # every record says which job it is about
    logging.getLogger("activejob").setLevel(min(logging.getLogger().level, logging.INFO))
    options = {"concurrency": concurrency, "queues": queues, "poll_interval": poll_interval, "lease": lease,
               "shutdown_grace": shutdown_grace, "cancel_grace": cancel_grace, "sqlite_synchronous": sqlite_synchronous,
               "queue_rate_limits": _queue_rate_limits(queue_rate_limit)}
    # Checked here, before any child starts: each of N children would only fail the same way.
    url = _usable(_settings(database_url, **options).database_url, create=True)
    if processes > 1 and metrics_port is not None:
        raise _InvalidSetting("--metrics-port serves one process's counters: with --processes N, start N "
                              "workers each with its own --metrics-port, or scrape the dashboard's /metrics")
    if processes > 1:
        _reachable(url)
        # Children get the same command line: the group's options (-v), then the worker's.
        at = sys.argv.index("worker", 1) if "worker" in sys.argv[1:] else 1
        argv = _strip_processes(sys.argv[at + 1:])
        supervisor = Supervisor(argv, processes, global_argv=sys.argv[1:at])
        code = supervisor.run()
        if supervisor.failure:
            click.echo(f"Error: {supervisor.failure}", err=True)
        sys.exit(code)
    _import(imports)
    queue = _queue(database_url, create=True, **options)
    from .definition import registry

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
            raise _InvalidSetting(f"--queue-rate-limit takes QUEUE=LIMIT such as mail=100/m, got {entry!r}")
        limits[queue.strip()] = limit.strip()
    return limits or None


def _serve_metrics(queue: Any, host: str, port: int) -> Any:
    """This worker's Prometheus metrics, served on host:port until the worker stops."""
    try:
        from .metrics import WorkerMetrics
    except ImportError as error:
        raise _InvalidSetting(f"--metrics-port needs the metrics extra: pip install 'activejob[metrics]' "
                              f"({error})") from None
    metrics = WorkerMetrics(queue)
    try:
        server, _thread = metrics.serve(port, host=host)
    except OSError as error:
        metrics.close()
        raise _InvalidSetting(f"cannot serve metrics on {host}:{port}: {error.strerror or error}") from None
    logging.getLogger("activejob").info("metrics at http://%s:%d/metrics", host, server.server_port)
    return metrics


def _reachable(url: str) -> None:
    """Connect once (a SQLite file is created), so a database that cannot be used stops the
    command now, not each of the supervisor's children in turn."""
    from .store import Store

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


@main.group()
def db() -> None:
    """Database schema (Alembic migrations shipped with activejob)."""


@db.command("upgrade")
@_url
@click.option("--revision", default="head", show_default=True)
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from . import migrate
    from .store import Store

    store = Store(_resolved(database_url, create=True))
    migrate.upgrade(store.engine, revision)
    click.echo(f"database at revision {migrate.current(store.engine)}")


@db.command("current")
@_url
def db_current(database_url: str | None) -> None:
    """Show the schema revision of the database."""
    from . import migrate
    from .store import Store

    store = Store(_resolved(database_url))
    click.echo(f"{migrate.current(store.engine) or '(none)'} (newest: {migrate.head()})")


@db.command("downgrade")
@_url
@click.argument("revision")
def db_downgrade(database_url: str | None, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes activejob's tables)."""
    from . import migrate
    from .store import Store

    migrate.downgrade(Store(_resolved(database_url)).engine, revision)


def _resolved(url: str | None, *, create: bool = False) -> str:
    return _usable(_settings(url).database_url, create=create)


@main.command()
@_url
def prune(database_url: str | None) -> None:
    """Delete finished jobs past their retention, once."""
    click.echo(f"pruned {_queue(database_url).prune()} job(s)")


@main.command()
@_url
@_imports
@_json_option(table_by_default=False)
def stats(database_url: str | None, imports: tuple[str, ...], as_json: bool, as_table: bool) -> None:
    """Counts per status, job type and queue."""
    _import(imports)
    found = _queue(database_url).stats()
    if _wants_json(as_json, as_table, table_by_default=False):
        _echo_json(found)
        return
    from .records import STATUSES

    def counts(title: str, groups: dict[str, dict[str, int]]) -> None:
        _table([title, *STATUSES], [[name, *(row.get(s, 0) for s in STATUSES)] for name, row in sorted(groups.items())])

    counts("status", {"all": found})
    click.echo(f"total {found['total']}, scheduled for later {found['scheduled']}")
    if found["by_name"]:
        click.echo()
        counts("job type", found["by_name"])
    if found["by_queue"]:
        click.echo()
        counts("queue", found["by_queue"])
    if found["paused_queues"]:
        click.echo(f"\npaused queues: {', '.join(found['paused_queues'])}")
    if found["unknown_job_types"]:
        due = ", ".join(f"{n} ({c})" for n, c in sorted(found["unknown_job_types"].items()))
        click.echo(f"\ndue jobs no live worker can run: {due}")


def _statuses(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str] | None:
    """`--status failed,cancelled` or `--status failed --status cancelled`, each one checked."""
    from .records import STATUSES

    wanted: list[str] = []
    for value in values:
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            if part not in STATUSES:
                raise click.BadParameter(f"status must be one of {', '.join(STATUSES)}; got {part!r}")
            if part not in wanted:
                wanted.append(part)
    return wanted or None


@main.command()
@_url
@click.option("--status", multiple=True, callback=_statuses, metavar="STATUS[,STATUS]",
              help="Only jobs in these statuses (comma-separated or repeated).")
@click.option("--name", default=None)
@click.option("--queue", "queue_name", default=None)
@click.option("--owner", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@_json_option(table_by_default=True)
@click.option("--watch", type=click.FloatRange(min=0.1), is_flag=False, flag_value=2.0, default=None,
              metavar="[SECONDS]", help="Refresh every SECONDS (default 2) until Ctrl-C.")
def jobs(database_url: str | None, status: list[str] | None, name: str | None, queue_name: str | None,
         owner: str | None, limit: int, as_json: bool, as_table: bool, watch: float | None) -> None:
    """List jobs, newest first."""
    in_json = _wants_json(as_json, as_table, table_by_default=True)
    queue = _queue(database_url)

    def listing() -> list[Any]:
        return list(queue.list_jobs(status=status, name=name, queue=queue_name, owner=owner, limit=limit))

    if watch is None:
        found = listing()
        if in_json:
            _echo_json([j.to_dict() for j in found])
        else:
            _job_rows(found)
        return
    terminal = _stdout_is_terminal()
    try:
        while True:
            found = listing()
            if in_json:
                _echo_line([j.to_dict() for j in found])  # one list a line
            else:
                if terminal:
                    click.clear()
                click.echo(f"every {watch:g}s, {len(found)} job(s), {_when(datetime.now())} (Ctrl-C stops)")
                _job_rows(found)
                if not terminal:
                    click.echo()
            time.sleep(watch)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends


def _job_rows(found: Sequence[Any]) -> None:
    for j in found:
        progress = f"{j.progress:.0%}" if j.progress is not None else ""
        click.echo(f"{j.id:>8}  {j.status:<10} {j.name:<28} {j.queue:<12} attempts={j.attempts} {progress}")


@main.command()
@_url
@click.argument("job_id", type=int)
@_json_option(table_by_default=False)
@click.option("--follow", "-f", is_flag=True,
              help="Print new events as they come until the job finishes; exit 0 if it completed, 1 if not.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="Seconds between looks for new events, with --follow.")
def show(database_url: str | None, job_id: int, as_json: bool, as_table: bool, follow: bool,
         interval: float) -> None:
    """One job, with its events."""
    in_json = _wants_json(as_json, as_table, table_by_default=False)
    queue = _queue(database_url)
    info = queue.get_job(job_id)
    if info is None:
        raise click.ClickException(f"no job with id {job_id}")
    if follow:
        _follow(queue, job_id, in_json, interval)
    events = queue.events(job_id)
    if in_json:
        _echo_json({**info.to_dict(), "events": [e.to_dict() for e in events]})
        return
    fields = info.to_dict()
    shown = ("id", "name", "status", "queue", "priority", "owner", "parent_id", "attempts", "max_retries",
             "progress", "progress_message", "created_at", "run_at", "started_at", "finished_at", "duration",
             "worker_id", "error")
    _table(["field", "value"], [[k, json.dumps(fields[k]) if isinstance(fields[k], dict | list) else fields[k]]
                                for k in shown if fields.get(k) not in (None, "")])
    click.echo(f"args    {json.dumps(info.args, default=str)}")
    if info.result is not None:
        click.echo(f"result  {json.dumps(info.result, default=str)}")
    click.echo()
    _event_rows(events, header=True)
    if info.traceback:
        click.echo(f"\n{info.traceback.rstrip()}")


@main.command()
@_url
@_imports
@click.argument("job_id", type=int)
@_json_option(table_by_default=True)
def explain(database_url: str | None, imports: tuple[str, ...], job_id: int, as_json: bool, as_table: bool) -> None:
    """Why a job is, or is not, running: a reason and what to do (--import the job modules
    so their concurrency and rate limits are checked too)."""
    in_json = _wants_json(as_json, as_table, table_by_default=True)
    _import(imports)
    with _refusals():
        why = _queue(database_url).explain(job_id)
    if in_json:
        _echo_json(why.to_dict())
    else:
        click.echo(f"{why.reason}: {why.message}")


def _event_data(data: dict[str, Any]) -> str:
    """An event's data in a table cell: short, without the traceback (`show` prints the job's)."""
    shown = {k: v for k, v in data.items() if k != "traceback"}
    text = json.dumps(shown, default=str) if shown else ""
    return text if len(text) <= 100 else text[:99] + "…"


def _event_rows(events: Sequence[Any], *, header: bool) -> None:
    rows = [[e.id, _when(e.created_at), e.type, e.status, e.attempt, _event_data(e.data)] for e in events]
    if header:
        _table(["event", "at", "type", "status", "attempt", "data"], rows)
    else:
        for row in rows:
            click.echo("  ".join(str(c) for c in row).rstrip())


def _follow(queue: Any, job_id: int, in_json: bool, interval: float) -> None:
    """Print the job's events, old then new, until it finishes; exit 0 if it completed, 1 if
    it failed or was cancelled, 130 on Ctrl-C."""
    from .models import FINISHED

    seen = 0
    try:
        while True:
            info = queue.get_job(job_id)  # before the events: none after the last status is missed
            events = queue.events(job_id, after=seen)
            if events:
                seen = events[-1].id
                for event in events:
                    _echo_line(event.to_dict()) if in_json else _event_rows([event], header=False)
            if info is None:
                raise click.ClickException(f"job {job_id} was deleted")
            if info.status in FINISHED:
                if in_json:
                    _echo_line(info.to_dict())
                else:
                    click.echo(f"job {job_id} {info.status}" + (f": {info.error}" if info.error else ""))
                sys.exit(0 if info.status == "completed" else 1)
            time.sleep(interval)
    except KeyboardInterrupt:
        sys.exit(130)


@main.command()
@_url
@click.argument("job_id", type=int)
def cancel(database_url: str | None, job_id: int) -> None:
    """Cancel a pending or running job."""
    with _refusals():
        click.echo(_queue(database_url).cancel(job_id))


@main.command()
@_url
@click.argument("job_id", type=int)
def retry(database_url: str | None, job_id: int) -> None:
    """Run a failed or cancelled job again."""
    with _refusals():
        click.echo(f"job {_queue(database_url).retry(job_id).id} is pending again")


@main.command()
@_url
@click.argument("job_id", type=int)
def delete(database_url: str | None, job_id: int) -> None:
    """Delete a job that is not running."""
    with _refusals():
        _queue(database_url).delete(job_id)
    click.echo(f"deleted job {job_id}")


@main.command()
@_url
@click.option("--unfinished/--finished", "unfinished", default=None,
              help="Only batches still running, or only finished ones (default: both).")
@click.option("--owner", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@_json_option(table_by_default=True)
def batches(database_url: str | None, unfinished: bool | None, owner: str | None, limit: int, as_json: bool,
            as_table: bool) -> None:
    """List batches, newest first, with their members' counts."""
    found = _queue(database_url).list_batches(limit=limit, unfinished=unfinished, owner=owner)
    if _wants_json(as_json, as_table, table_by_default=True):
        _echo_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo("no batches")
        return
    _table(["batch", "state", "progress", "total", "pending", "running", "completed", "failed", "cancelled",
            "created", "description"],
           [[b.id, _batch_state(b), f"{b.progress:.0%}", b.total, b.pending, b.running, b.completed, b.failed,
             b.cancelled, _when(b.created_at), b.description or ""] for b in found])


def _batch_state(batch: Any) -> str:
    if batch.finished:
        return "cancelled" if batch.cancelled_at else "failed" if batch.failed else "completed"
    return "open" if not batch.sealed else "failing" if batch.failed else "running"


@main.command()
@_url
@click.argument("batch_id", type=int)
@_json_option(table_by_default=True)
@click.option("--follow", "-f", is_flag=True,
              help="Print the batch's events as they come until it finishes; exit 0 if every member "
                   "completed, 1 if not.")
@click.option("--interval", type=click.FloatRange(min=0.05), default=0.5, show_default=True,
              help="Seconds between looks for new events, with --follow.")
def batch(database_url: str | None, batch_id: int, as_json: bool, as_table: bool, follow: bool,
          interval: float) -> None:
    """One batch: its counts, its members and its events (its own and its members')."""
    in_json = _wants_json(as_json, as_table, table_by_default=True)
    queue = _queue(database_url)
    info = queue.get_batch(batch_id)
    if info is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if follow:
        _follow_batch(queue, batch_id, in_json, interval)
    members = queue.batch_members(batch_id)
    events = queue.events(batch_id=batch_id, limit=1000)
    if in_json:
        _echo_json({**info.to_dict(), "members": [m.to_dict() for m in members],
                    "callbacks": [c.to_dict() for c in queue.batch_callbacks(batch_id)],
                    "events": [e.to_dict() for e in events]})
        return
    click.echo(f"batch {info.id}  {_batch_state(info)}  {info.progress:.0%}"
               + (f"  {info.description}" if info.description else ""))
    click.echo(f"total={info.total} pending={info.pending} running={info.running} completed={info.completed} "
               f"failed={info.failed} cancelled={info.cancelled}")
    click.echo()
    _job_rows(members)
    click.echo()
    _batch_event_rows(events, header=True)


def _batch_event_rows(events: Sequence[Any], *, header: bool) -> None:
    rows = [[e.id, _when(e.created_at), "batch" if e.job_id is None else e.job_id, e.type, e.status,
             _event_data(e.data)] for e in events]
    if header:
        _table(["event", "at", "job", "type", "status", "data"], rows)
    else:
        for row in rows:
            click.echo("  ".join(str(c) for c in row).rstrip())


def _follow_batch(queue: Any, batch_id: int, in_json: bool, interval: float) -> None:
    """Print the batch's events, old then new, until it finishes; exit 0 if every member
    completed, 1 if not, 130 on Ctrl-C."""
    seen = 0
    try:
        while True:
            info = queue.get_batch(batch_id)  # before the events: none before it finished is missed
            while events := queue.events(batch_id=batch_id, after=seen, limit=1000):
                seen = events[-1].id
                for event in events:
                    _echo_line(event.to_dict()) if in_json else _batch_event_rows([event], header=False)
            if info is None:
                raise click.ClickException(f"batch {batch_id} is gone")
            if info.finished:
                if in_json:
                    _echo_line(info.to_dict())
                else:
                    click.echo(f"batch {batch_id} {_batch_state(info)}: {info.completed} completed, "
                               f"{info.failed} failed, {info.cancelled} cancelled")
                sys.exit(0 if info.completed == info.total else 1)
            time.sleep(interval)
    except KeyboardInterrupt:
        sys.exit(130)


@main.command("cancel-batch")
@_url
@click.argument("batch_id", type=int)
def cancel_batch(database_url: str | None, batch_id: int) -> None:
    """Cancel a batch's members not yet finished (running ones as soon as their workers hear)."""
    with _refusals():
        info = _queue(database_url).cancel_batch(batch_id)
    click.echo(f"batch {batch_id} cancelled: {info.cancelled} member(s) cancelled, "
               f"{info.running} still stopping")


@main.command()
@_url
@click.argument("queue_name")
def pause(database_url: str | None, queue_name: str) -> None:
    """Stop workers from starting jobs of a queue (running ones finish)."""
    _pause_or_resume(database_url, queue_name, pause=True)


@main.command()
@_url
@click.argument("queue_name")
def resume(database_url: str | None, queue_name: str) -> None:
    """Let workers start jobs of a paused queue again."""
    _pause_or_resume(database_url, queue_name, pause=False)


def _pause_or_resume(database_url: str | None, queue_name: str, *, pause: bool) -> None:
    with _refusals():
        queue = _queue(database_url)
        changed = queue.pause_queue(queue_name) if pause else queue.resume_queue(queue_name)
    done, unchanged = ("paused", "was already paused") if pause else ("resumed", "was not paused")
    click.echo(f"queue {queue_name} {done if changed else unchanged}")


@main.command()
@_url
@_json_option(table_by_default=True)
def queues(database_url: str | None, as_json: bool, as_table: bool) -> None:
    """Each queue's jobs per status, and whether it is paused."""
    queue = _queue(database_url)
    stats = queue.stats()
    paused = set(stats["paused_queues"])
    rows = {name: {**counts, "paused": name in paused} for name, counts in stats["by_queue"].items()}
    for name in paused - set(rows):
        rows[name] = {"paused": True}
    if _wants_json(as_json, as_table, table_by_default=True):
        _echo_json(dict(sorted(rows.items())))
        return
    for name, row in sorted(rows.items()):
        counts = "  ".join(f"{s}={row.get(s, 0)}" for s in ("pending", "running", "failed"))
        click.echo(f"{name:<20} {'PAUSED ' if row['paused'] else '       '}{counts}")


@main.command()
@_url
@_json_option(table_by_default=False)
def workers(database_url: str | None, as_json: bool, as_table: bool) -> None:
    """Live workers and their last heartbeat."""
    found = _queue(database_url).workers()
    if _wants_json(as_json, as_table, table_by_default=False):
        _echo_json([w.to_dict() for w in found])
        return
    if not found:
        click.echo("no live workers")
        return
    _table(["worker", "host", "pid", "concurrency", "queues", "job types", "started", "heartbeat"],
           [[w.id, w.host, w.pid, w.concurrency, ",".join(w.queues) if w.queues else "(all)",
             ",".join(w.job_types), _when(w.started_at), _when(w.heartbeat_at)] for w in found])


@main.command()
@_imports
@_json_option(table_by_default=False)
def types(imports: tuple[str, ...], as_json: bool, as_table: bool) -> None:
    """Job types registered by the imported modules."""
    from .definition import registry

    _import(imports)
    described = [registry[n].options.describe() for n in registry]
    if _wants_json(as_json, as_table, table_by_default=False):
        _echo_json(described)
        return
    if not described:
        click.echo("no job types registered: pass --import MODULE")
        return
    _table(["name", "queue", "priority", "max_retries", "timeout", "concurrency_limit", "rate_limit", "label"],
           [[d["name"], d["queue"], d["priority"], d["max_retries"], d["timeout"], d["concurrency_limit"],
             d["rate_limit"] and d["rate_limit"] + (" per key" if d["rate_limit_per_key"] else ""), d["label"]]
            for d in described])


@main.command()
@_url
@_imports
@_json_option(table_by_default=True)
def cron(database_url: str | None, imports: tuple[str, ...], as_json: bool, as_table: bool) -> None:
    """Cron schedules (in code and in settings), their next run and last slot enqueued."""
    _import(imports)
    found = _queue(database_url).recurring()
    if _wants_json(as_json, as_table, table_by_default=True):
        _echo_json(found)
    elif not found:
        click.echo("no cron schedules: pass --import MODULE (the module that registers them)")
    else:
        _table(["key", "job", "cron", "timezone", "catch_up", "next run (UTC)", "last enqueued (UTC)", "last status"],
               [[s["key"], s["job"], s["cron"], s["timezone"], s["catch_up"], _when(s["next_run"]),
                 _when(s["last_enqueued"]), s["last_status"]] for s in found])
    problems = [s["error"] for s in found if s["error"]]
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        sys.exit(1)


def _loopback(host: str) -> bool:
    import ipaddress

    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hook(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise click.BadParameter("use module:function", param_hint="--authorize")
    try:
        found = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as error:
        raise click.BadParameter(f"cannot load {spec!r}: {error}", param_hint="--authorize") from None
    if not callable(found):
        raise click.BadParameter(f"{spec!r} is not callable", param_hint="--authorize")
    return found


@main.command()
@_url
@_imports
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback needs --token or --authorize.")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--token", envvar="ACTIVEJOB_DASHBOARD_TOKEN", default=None, show_envvar=True,
              help="Secret every page, API call and WebSocket must present (open the dashboard with ?token=...).")
@click.option("--authorize", "authorize_spec", default=None, metavar="MODULE:FUNCTION",
              help="Your own check: a function (request) -> bool, sync or async.")
@click.option("--root-path", default="", help="URL prefix when served behind a proxy under a path.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A host name browsers reach the dashboard by (repeatable; '*.example.com', '*' for any). "
                   "Default: localhost, 127.0.0.1, [::1] and the --host address; other Host headers get a 400.")
def dashboard(database_url: str | None, imports: tuple[str, ...], host: str, port: int, token: str | None,
              authorize_spec: str | None, root_path: str, allowed_hosts: tuple[str, ...]) -> None:
    """Serve the web dashboard, REST API and WebSocket (needs the `web` extra)."""
    _import(imports)
    hook = _hook(authorize_spec) if authorize_spec else None
    if not _loopback(host) and not token and hook is None:
        raise click.ClickException(
            f"refusing to serve the dashboard on {host} without protection: pass --token (or set "
            "ACTIVEJOB_DASHBOARD_TOKEN) or --authorize, or bind 127.0.0.1")
    try:
        import uvicorn

        from .web import create_app
        from .web.hosts import LOOPBACK, normalize_patterns
    except ImportError as error:
        raise click.ClickException(
            f"the dashboard needs the web extra: pip install 'activejob[web]' ({error})") from None
    wildcard = host in ("0.0.0.0", "::", "")
    # The address it binds to is a name it is served as; a wildcard bind names none.
    hosts = list(allowed_hosts) or (list(LOOPBACK) if wildcard else [*LOOPBACK, host])
    try:
        checked = normalize_patterns(hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--allowed-host") from None
    app = create_app(_queue(database_url), token=token, authorize=hook, allowed_hosts=checked)
    if wildcard and not allowed_hosts:
        click.echo(f"note: only requests for localhost are answered; add --allowed-host NAME for each name "
                   f"browsers reach {host} by", err=True)
    shown = "localhost" if _loopback(host) else host
    click.echo(f"activejob dashboard: http://{shown}:{port}{root_path}/" + ("?token=<your token>" if token else ""))
    uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="warning")


def run() -> None:
    main(prog_name="activejob")
