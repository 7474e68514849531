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
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


def _queue(url: str | None, **options: Any) -> Any:
    from .queue import JobQueue

    with _valid_settings():
        return JobQueue.configure(url, **{k: v for k, v in options.items() if v is not None})


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal (no such job, a job in the wrong state, a bad queue name) is the user's to
    fix: show its message and exit 1, not a traceback."""
    try:
        yield
    except (ActiveJobError, ValueError) as error:
        raise click.ClickException(str(error)) from None


@click.group()
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
@click.option("--lease", type=float, default=None, help="Seconds a job stays ours without a heartbeat.")
@click.option("--shutdown-grace", type=float, default=None, help="Seconds running jobs get on SIGTERM.")
@click.option("--cancel-grace", type=float, default=None,
              help="Seconds a sync job gets to notice a cancel or shutdown before the worker stops waiting.")
@click.option("--sqlite-synchronous", type=click.Choice(["NORMAL", "FULL"], case_sensitive=False), default=None,
              help="How durable a SQLite commit is (default NORMAL; FULL also survives a power loss).")
@click.option("--processes", "-p", type=int, default=1, show_default=True, help="Worker processes to run.")
def worker(database_url: str | None, imports: tuple[str, ...], concurrency: int | None, queues: str | None,
           poll_interval: float | None, lease: float | None, shutdown_grace: float | None,
           cancel_grace: float | None, sqlite_synchronous: str | None, processes: int) -> None:
    """Run jobs until SIGTERM/SIGINT (a second signal stops at once)."""
    logging.getLogger("activejob").setLevel(min(logging.getLogger().level, logging.INFO))
    options = {"concurrency": concurrency, "queues": queues, "poll_interval": poll_interval, "lease": lease,
               "shutdown_grace": shutdown_grace, "cancel_grace": cancel_grace, "sqlite_synchronous": sqlite_synchronous}
    # Checked here, before any child starts: each of N children would only fail the same way.
    _settings(database_url, **options)
    if processes > 1:
        # Children get the same command line: the group's options (-v), then the worker's.
        at = sys.argv.index("worker", 1) if "worker" in sys.argv[1:] else 1
        argv = _strip_processes(sys.argv[at + 1:])
        supervisor = Supervisor(argv, processes, global_argv=sys.argv[1:at])
        code = supervisor.run()
        if supervisor.failure:
            click.echo(f"Error: {supervisor.failure}", err=True)
        sys.exit(code)
    _import(imports)
    queue = _queue(database_url, **options)
    queue.work()


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

    store = Store(_resolved(database_url))
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


def _resolved(url: str | None) -> str:
    return _settings(url).database_url


@main.command()
@_url
def prune(database_url: str | None) -> None:
    """Delete finished jobs past their retention, once."""
    click.echo(f"pruned {_queue(database_url).prune()} job(s)")


@main.command()
@_url
@_imports
def stats(database_url: str | None, imports: tuple[str, ...]) -> None:
    """Counts per status, job type and queue."""
    _import(imports)
    _echo_json(_queue(database_url).stats())


@main.command()
@_url
@click.option("--status", default=None)
@click.option("--name", default=None)
@click.option("--queue", "queue_name", default=None)
@click.option("--owner", default=None)
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs(database_url: str | None, status: str | None, name: str | None, queue_name: str | None,
         owner: str | None, limit: int, as_json: bool) -> None:
    """List jobs, newest first."""
    found = _queue(database_url).list_jobs(status=status, name=name, queue=queue_name, owner=owner, limit=limit)
    if as_json:
        _echo_json([j.to_dict() for j in found])
        return
    for j in found:
        progress = f"{j.progress:.0%}" if j.progress is not None else ""
        click.echo(f"{j.id:>8}  {j.status:<10} {j.name:<28} {j.queue:<12} attempts={j.attempts} {progress}")


@main.command()
@_url
@click.argument("job_id", type=int)
def show(database_url: str | None, job_id: int) -> None:
    """One job, with its events."""
    queue = _queue(database_url)
    info = queue.get_job(job_id)
    if info is None:
        raise click.ClickException(f"no job with id {job_id}")
    _echo_json({**info.to_dict(), "events": [e.to_dict() for e in queue.events(job_id)]})


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def queues(database_url: str | None, as_json: bool) -> None:
    """Each queue's jobs per status, and whether it is paused."""
    queue = _queue(database_url)
    stats = queue.stats()
    paused = set(stats["paused_queues"])
    rows = {name: {**counts, "paused": name in paused} for name, counts in stats["by_queue"].items()}
    for name in paused - set(rows):
        rows[name] = {"paused": True}
    if as_json:
        _echo_json(dict(sorted(rows.items())))
        return
    for name, row in sorted(rows.items()):
        counts = "  ".join(f"{s}={row.get(s, 0)}" for s in ("pending", "running", "failed"))
        click.echo(f"{name:<20} {'PAUSED ' if row['paused'] else '       '}{counts}")


@main.command()
@_url
def workers(database_url: str | None) -> None:
    """Live workers and their last heartbeat."""
    _echo_json([w.to_dict() for w in _queue(database_url).workers()])


@main.command()
@_imports
def types(imports: tuple[str, ...]) -> None:
    """Job types registered by the imported modules."""
    from .definition import registry

    _import(imports)
    _echo_json([registry[n].options.describe() for n in registry])


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
