"""`activejob enqueue`: a job from the shell (run the nightly cleanup now, send one email
again), written as `perform_later` writes it: the job's type, imported with `--import`,
checks its arguments and options first, and nothing is written when they are wrong."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

import click

from .errors import refusals
from .jobs import follow_job
from .options import import_modules, imports_option, open_queue, url_option
from .output import echo_json, echo_line, interval_option, show_time


def _arguments(name: str, text: str | None) -> dict[str, Any]:
    """ARGS as the job's keyword arguments: a JSON object (`-`: read from standard input)."""
    if text is None:
        return {}
    if text == "-":
        text = sys.stdin.read()
    try:
        given = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"not JSON ({error}); give {name}'s arguments as an object, "
                                 """like '{"to": "a@example.com"}'""", param_hint="ARGS") from None
    if not isinstance(given, dict):
        raise click.BadParameter(f"{name}'s arguments are a JSON object of name: value, got {type(given).__name__} "
                                 f"{text.strip()[:60]}", param_hint="ARGS")
    return given


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """`--at`: an ISO 8601 time; without an offset it is UTC, as `perform_at` takes it."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, like 2030-01-02T03:04:05+00:00") from None


@click.command()
@url_option
@imports_option
@click.argument("name")
@click.argument("args", required=False, default=None, metavar="[ARGS]")
@click.option("--queue", "queue_name", default=None, help="The queue (default: the job type's).")
@click.option("--priority", type=int, default=None, help="Higher runs first (default: the job type's).")
@click.option("--wait", type=float, default=None, metavar="SECONDS", help="Run no sooner than SECONDS from now.")
@click.option("--at", "wait_until", callback=_moment, default=None, metavar="TIME",
              help="Run no sooner than TIME (ISO 8601; UTC without an offset).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the job as JSON (for scripts), with `enqueued`: false if a unique key's holder.")
@click.option("--follow", "-f", is_flag=True,
              help="Then print its events as they come until it finishes; exit 0 if it completed, 1 if not.")
@interval_option
def enqueue(database_url: str | None, imports: tuple[str, ...], name: str, args: str | None, queue_name: str | None,
            priority: int | None, wait: float | None, wait_until: datetime | None, as_json: bool, follow: bool,
            interval: float) -> None:
    """Enqueue a job of type NAME with ARGS, a JSON object of its arguments ('-': read
    them from standard input). Prints its id.

    \b
        activejob enqueue send_email '{"to": "a@example.com"}' --import myapp.jobs
        activejob enqueue nightly_cleanup --import myapp.jobs --queue maintenance --wait 60
        activejob enqueue backfill '{"day": "2026-12-01"}' --import myapp.jobs --follow
    """
    from .. import clock
    from ..definition import registry
    from ..errors import UnknownJobError

    if wait is not None and wait_until is not None:
        raise click.UsageError("--wait and --at: pick one")
    import_modules(imports)
    try:
        job_type = registry[name]
    except UnknownJobError as error:
        if imports:
            raise click.ClickException(str(error)) from None
        raise click.ClickException(f"no job type named {name!r} is registered: pass --import with the module "
                                   "that defines it (or set ACTIVEJOB_IMPORT)") from None
    given = _arguments(name, args)
    queue = open_queue(database_url)
    asked = clock.now()
    options = {"queue": queue_name, "priority": priority, "wait": wait, "wait_until": wait_until}
    with refusals():
        handle = job_type.set(**{k: v for k, v in options.items() if v is not None}).perform_later(given)
        info = queue.get_job(handle.id)
    held = info is not None and info.created_at < asked  # its unique key was held: the holder came back
    if info is None:  # a worker ran and pruned it already, or someone deleted it
        click.echo(f"job {handle.id} ({handle.name}) enqueued")
    elif as_json:  # `enqueued`: false for the holder of a unique key, which is not a new job
        (echo_line if follow else echo_json)({**info.to_dict(), "enqueued": not held})
    elif held:
        click.echo(f"job {info.id} ({info.name}) already held its unique key, and is {info.status}: no new job")
    else:
        when = f", runs at {show_time(info.run_at)} UTC" if info.status == "pending" and info.run_at > \
            info.created_at else ""
        click.echo(f"job {info.id} ({info.name}) on queue {info.queue!r}: {info.status}{when}")
    if follow:
        follow_job(queue, handle.id, as_json, interval)
