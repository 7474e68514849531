"""The system as a whole: `stats`, `queues`, live `workers`, registered job `types` and `cron`
schedules (and running one of them now)."""

from __future__ import annotations

import sys

import click

from .errors import refusals
from .jobs import follow_job
from .options import import_modules, imports_option, open_queue, url_option
from .output import echo_json, echo_line, interval_option, json_option, print_table, show_time, wants_json


@click.command()
@url_option
@imports_option
@json_option(table_by_default=False)
def stats(database_url: str | None, imports: tuple[str, ...], as_json: bool, as_table: bool) -> None:
    """Counts per status, job type and queue."""
    import_modules(imports)
    found = open_queue(database_url).stats()
    if wants_json(as_json, as_table, table_by_default=False):
        echo_json(found)
        return
    from ..records import STATUSES

    def counts(title: str, groups: dict[str, dict[str, int]]) -> None:
        print_table([title, *STATUSES],
                    [[name, *(row.get(s, 0) for s in STATUSES)] for name, row in sorted(groups.items())])

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


@click.command()
@url_option
@json_option(table_by_default=True)
def queues(database_url: str | None, as_json: bool, as_table: bool) -> None:
    """Each queue's jobs per status, whether it is paused, and its rate limit as the live
    workers keep it."""
    from ..queue_reads import queue_rows

    rows = {row["name"]: {**row["counts"], "paused": row["paused"], "rate_limit": row["rate_limit"]}
            for row in queue_rows(open_queue(database_url).stats())}
    if wants_json(as_json, as_table, table_by_default=True):
        echo_json(rows)
        return
    for name, row in rows.items():
        counts = "  ".join(f"{s}={row[s]}" for s in ("pending", "running", "failed"))
        rate = f"  rate={row['rate_limit']}" if row["rate_limit"] else ""
        click.echo(f"{name:<20} {'PAUSED ' if row['paused'] else '       '}{counts}{rate}")


@click.command()
@url_option
@json_option(table_by_default=False)
def workers(database_url: str | None, as_json: bool, as_table: bool) -> None:
    """Live workers and their last heartbeat."""
    found = open_queue(database_url).workers()
    if wants_json(as_json, as_table, table_by_default=False):
        echo_json([w.to_dict() for w in found])
        return
    if not found:
        click.echo("no live workers")
        return
    print_table(["worker", "host", "pid", "concurrency", "queues", "queue rate limits", "job types", "started",
                 "heartbeat"],
                [[w.id, w.host, w.pid, w.concurrency, ",".join(w.queues) if w.queues else "(all)",
                  ",".join(f"{q}={limit}" for q, limit in sorted(w.queue_rate_limits.items())),
                  ",".join(w.job_types), show_time(w.started_at), show_time(w.heartbeat_at)] for w in found])


@click.command()
@imports_option
@json_option(table_by_default=False)
def types(imports: tuple[str, ...], as_json: bool, as_table: bool) -> None:
    """Job types registered by the imported modules."""
    from ..definition import registry

    import_modules(imports)
    described = [registry[n].options.describe() for n in registry]
    if wants_json(as_json, as_table, table_by_default=False):
        echo_json(described)
        return
    if not described:
        click.echo("no job types registered: pass --import MODULE")
        return
    print_table(["name", "queue", "priority", "max_retries", "timeout", "concurrency_limit", "rate_limit", "label"],
                [[d["name"], d["queue"], d["priority"], d["max_retries"], d["timeout"], d["concurrency_limit"],
                  d["rate_limit"] and d["rate_limit"] + (" per key" if d["rate_limit_per_key"] else ""), d["label"]]
                 for d in described])


@click.command()
@url_option
@imports_option
@json_option(table_by_default=True)
@click.option("--run", "run_key", default=None, metavar="KEY",
              help="Enqueue the job of schedule KEY now (its slots run as usual), and print its id.")
@click.option("--follow", "-f", is_flag=True,
              help="With --run: then print its events until it finishes; exit 0 if it completed, 1 if not.")
@interval_option
def cron(database_url: str | None, imports: tuple[str, ...], as_json: bool, as_table: bool,
         run_key: str | None, follow: bool, interval: float) -> None:
    """Cron schedules (in code and in settings), their next run and last slot enqueued;
    `--run KEY` runs one now."""
    import_modules(imports)
    queue = open_queue(database_url)
    if follow and run_key is None:
        raise click.UsageError("--follow follows the job of --run KEY: give --run too")
    if run_key is not None:
        with refusals():
            handle = queue.run_schedule(run_key)
        info = queue.get_job(handle.id)
        if as_json and info is not None:
            (echo_line if follow else echo_json)(info.to_dict())
        else:
            click.echo(f"job {handle.id} ({handle.name}) enqueued now for schedule {run_key!r}")
        if follow:
            follow_job(queue, handle.id, as_json, interval)
        return
    found = queue.recurring()
    if wants_json(as_json, as_table, table_by_default=True):
        echo_json(found)
    elif not found:
        click.echo("no cron schedules: pass --import MODULE (the module that registers them)")
    else:
        print_table(["key", "job", "cron", "timezone", "catch_up", "next run (UTC)", "last enqueued (UTC)",
                     "last status"],
                    [[s["key"], s["job"], s["cron"], s["timezone"], s["catch_up"], show_time(s["next_run"]),
                      show_time(s["last_enqueued"]), s["last_status"]] for s in found])
    problems = [s["error"] for s in found if s["error"]]
    for problem in problems:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        sys.exit(1)
