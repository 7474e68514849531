"""Reading batches: `batches`, and `batch` (with `--follow`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import click

from .jobs import event_data, job_rows
from .options import open_queue, url_option
from .output import echo_json, echo_line, follow_until, interval_option, json_option, print_table, show_time, wants_json


@click.command()
@url_option
@click.option("--unfinished/--finished", "unfinished", default=None,
              help="Only batches still running, or only finished ones (default: both).")
@click.option("--owner", default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option(table_by_default=True)
def batches(database_url: str | None, unfinished: bool | None, owner: str | None, limit: int, as_json: bool,
            as_table: bool) -> None:
    """List batches, newest first, with their members' counts."""
    found = open_queue(database_url).list_batches(limit=limit, unfinished=unfinished, owner=owner)
    if wants_json(as_json, as_table, table_by_default=True):
        echo_json([b.to_dict() for b in found])
        return
    if not found:
        click.echo("no batches")
        return
    print_table(["batch", "state", "progress", "total", "pending", "running", "completed", "failed", "cancelled",
                 "created", "description"],
                [[b.id, batch_state(b), f"{b.progress:.0%}", b.total, b.pending, b.running, b.completed, b.failed,
                  b.cancelled, show_time(b.created_at), b.description or ""] for b in found])


def batch_state(batch: Any) -> str:
    if batch.finished:
        return "cancelled" if batch.cancelled_at else "failed" if batch.failed else "completed"
    return "open" if not batch.sealed else "failing" if batch.failed else "running"


@click.command()
@url_option
@click.argument("batch_id", type=int)
@json_option(table_by_default=True)
@click.option("--follow", "-f", is_flag=True,
              help="Print the batch's events as they come until it finishes; exit 0 if every member "
                   "completed, 1 if not.")
@interval_option
def batch(database_url: str | None, batch_id: int, as_json: bool, as_table: bool, follow: bool,
          interval: float) -> None:
    """One batch: its counts, its members and its events (its own and its members')."""
    in_json = wants_json(as_json, as_table, table_by_default=True)
    queue = open_queue(database_url)
    info = queue.get_batch(batch_id)
    if info is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if follow:
        _follow_batch(queue, batch_id, in_json, interval)
    members = queue.batch_members(batch_id)
    events = queue.events(batch_id=batch_id, limit=1000)
    if in_json:
        echo_json({**info.to_dict(), "members": [m.to_dict() for m in members],
                   "callbacks": [c.to_dict() for c in queue.batch_callbacks(batch_id)],
                   "events": [e.to_dict() for e in events]})
        return
    click.echo(f"batch {info.id}  {batch_state(info)}  {info.progress:.0%}"
               + (f"  {info.description}" if info.description else ""))
    click.echo(f"total={info.total} pending={info.pending} running={info.running} completed={info.completed} "
               f"failed={info.failed} cancelled={info.cancelled}")
    click.echo()
    job_rows(members)
    click.echo()
    _batch_event_rows(events, header=True)


def _batch_event_rows(events: Sequence[Any], *, header: bool) -> None:
    rows = [[e.id, show_time(e.created_at), "batch" if e.job_id is None else e.job_id, e.type, e.status,
             event_data(e.data)] for e in events]
    if header:
        print_table(["event", "at", "job", "type", "status", "data"], rows)
    else:
        for row in rows:
            click.echo("  ".join(str(c) for c in row).rstrip())


def _follow_batch(queue: Any, batch_id: int, in_json: bool, interval: float) -> NoReturn:
    """Print the batch's events, old then new, until it finishes; exit 0 if every member
    completed, 1 if not, 130 on Ctrl-C."""
    seen = 0

    def look() -> int | None:
        nonlocal seen
        info = queue.get_batch(batch_id)  # before the events: none before it finished is missed
        while events := queue.events(batch_id=batch_id, after=seen, limit=1000):
            seen = events[-1].id
            for event in events:
                echo_line(event.to_dict()) if in_json else _batch_event_rows([event], header=False)
        if info is None:
            raise click.ClickException(f"batch {batch_id} is gone")
        if not info.finished:
            return None
        if in_json:
            echo_line(info.to_dict())
        else:
            click.echo(f"batch {batch_id} {batch_state(info)}: {info.completed} completed, "
                       f"{info.failed} failed, {info.cancelled} cancelled")
        return 0 if info.completed == info.total else 1

    follow_until(look, interval)
