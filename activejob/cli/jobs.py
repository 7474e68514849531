"""Reading jobs: `jobs` (with `--watch`), `show` (with `--follow`) and `explain`; and the job
and event rows that `batch` prints too."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import click

from .errors import refusals
from .options import import_modules, imports_option, open_queue, url_option
from .output import (
    echo_json,
    echo_line,
    follow_until,
    interval_option,
    json_option,
    print_table,
    show_time,
    stdout_is_terminal,
    wants_json,
)


def _statuses(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> list[str] | None:
    """`--status failed,cancelled` or `--status failed --status cancelled`, each one checked."""
    from ..records import STATUSES

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


@click.command()
@url_option
@click.option("--status", multiple=True, callback=_statuses, metavar="STATUS[,STATUS]",
              help="Only jobs in these statuses (comma-separated or repeated).")
@click.option("--name", default=None)
@click.option("--queue", "queue_name", default=None)
@click.option("--owner", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option(table_by_default=True)
@click.option("--watch", type=click.FloatRange(min=0.1), is_flag=False, flag_value=2.0, default=None,
              metavar="[SECONDS]", help="Refresh every SECONDS (default 2) until Ctrl-C.")
def jobs(database_url: str | None, status: list[str] | None, name: str | None, queue_name: str | None,
         owner: str | None, limit: int, as_json: bool, as_table: bool, watch: float | None) -> None:
    """List jobs, newest first."""
    in_json = wants_json(as_json, as_table, table_by_default=True)
    queue = open_queue(database_url)

    def listing() -> list[Any]:
        return list(queue.list_jobs(status=status, name=name, queue=queue_name, owner=owner, limit=limit))

    if watch is None:
        found = listing()
        if in_json:
            echo_json([j.to_dict() for j in found])
        else:
            job_rows(found)
        return
    terminal = stdout_is_terminal()
    try:
        while True:
            found = listing()
            if in_json:
                echo_line([j.to_dict() for j in found])  # one list a line
            else:
                if terminal:
                    click.clear()
                click.echo(f"every {watch:g}s, {len(found)} job(s), {show_time(datetime.now())} (Ctrl-C stops)")
                job_rows(found)
                if not terminal:
                    click.echo()
            time.sleep(watch)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends


def job_rows(found: Sequence[Any]) -> None:
    for j in found:
        progress = f"{j.progress:.0%}" if j.progress is not None else ""
        click.echo(f"{j.id:>8}  {j.status:<10} {j.name:<28} {j.queue:<12} attempts={j.attempts} {progress}")


@click.command()
@url_option
@click.argument("job_id", type=int)
@json_option(table_by_default=False)
@click.option("--follow", "-f", is_flag=True,
              help="Print new events as they come until the job finishes; exit 0 if it completed, 1 if not.")
@interval_option
def show(database_url: str | None, job_id: int, as_json: bool, as_table: bool, follow: bool,
         interval: float) -> None:
    """One job, with its events."""
    in_json = wants_json(as_json, as_table, table_by_default=False)
    queue = open_queue(database_url)
    info = queue.get_job(job_id)
    if info is None:
        raise click.ClickException(f"no job with id {job_id}")
    if follow:
        follow_job(queue, job_id, in_json, interval)
    events = queue.events(job_id)
    if in_json:
        echo_json({**info.to_dict(), "events": [e.to_dict() for e in events]})
        return
    fields = info.to_dict()
    shown = ("id", "name", "status", "queue", "priority", "owner", "parent_id", "attempts", "max_retries",
             "progress", "progress_message", "created_at", "run_at", "started_at", "finished_at", "duration",
             "worker_id", "error")
    print_table(["field", "value"], [[k, json.dumps(fields[k]) if isinstance(fields[k], dict | list) else fields[k]]
                                     for k in shown if fields.get(k) not in (None, "")])
    click.echo(f"args    {json.dumps(info.args, default=str)}")
    if info.result is not None:
        click.echo(f"result  {json.dumps(info.result, default=str)}")
    click.echo()
    _event_rows(events, header=True)
    if info.traceback:
        click.echo(f"\n{info.traceback.rstrip()}")


@click.command()
@url_option
@imports_option
@click.argument("job_id", type=int)
@json_option(table_by_default=True)
def explain(database_url: str | None, imports: tuple[str, ...], job_id: int, as_json: bool, as_table: bool) -> None:
    """Why a job is, or is not, running: a reason and what to do (--import the job modules
    so their concurrency and rate limits are checked too)."""
    in_json = wants_json(as_json, as_table, table_by_default=True)
    import_modules(imports)
    with refusals():
        why = open_queue(database_url).explain(job_id)
    if in_json:
        echo_json(why.to_dict())
    else:
        click.echo(f"{why.reason}: {why.message}")


def event_data(data: dict[str, Any]) -> str:
    """An event's data in a table cell: short, without the traceback (`show` prints the job's)."""
    shown = {k: v for k, v in data.items() if k != "traceback"}
    text = json.dumps(shown, default=str) if shown else ""
    return text if len(text) <= 100 else text[:99] + "…"


def _event_rows(events: Sequence[Any], *, header: bool) -> None:
    rows = [[e.id, show_time(e.created_at), e.type, e.status, e.attempt, event_data(e.data)] for e in events]
    if header:
        print_table(["event", "at", "type", "status", "attempt", "data"], rows)
    else:
        for row in rows:
            click.echo("  ".join(str(c) for c in row).rstrip())


def follow_job(queue: Any, job_id: int, in_json: bool, interval: float) -> NoReturn:
    """Print the job's events, old then new, until it finishes; exit 0 if it completed, 1 if
    it failed or was cancelled, 130 on Ctrl-C."""
    from ..models import FINISHED

    seen = 0

    def look() -> int | None:
        nonlocal seen
        info = queue.get_job(job_id)  # before the events: none after the last status is missed
        events = queue.events(job_id, after=seen)
        if events:
            seen = events[-1].id
            for event in events:
                echo_line(event.to_dict()) if in_json else _event_rows([event], header=False)
        if info is None:
            raise click.ClickException(f"job {job_id} was deleted")
        if info.status not in FINISHED:
            return None
        if in_json:
            echo_line(info.to_dict())
        else:
            click.echo(f"job {job_id} {info.status}" + (f": {info.error}" if info.error else ""))
        return 0 if info.status == "completed" else 1

    follow_until(look, interval)
