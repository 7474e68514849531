"""Commands that change jobs, batches and queues: cancel, retry, delete, cancel-batch, pause,
resume, prune."""

from __future__ import annotations

import click

from .errors import refusals
from .options import open_queue, url_option


@click.command()
@url_option
@click.argument("job_id", type=int)
def cancel(database_url: str | None, job_id: int) -> None:
    """Cancel a pending or running job."""
    with refusals():
        click.echo(open_queue(database_url).cancel(job_id))


@click.command()
@url_option
@click.argument("job_id", type=int)
def retry(database_url: str | None, job_id: int) -> None:
    """Run a failed or cancelled job again."""
    with refusals():
        click.echo(f"job {open_queue(database_url).retry(job_id).id} is pending again")


@click.command()
@url_option
@click.argument("job_id", type=int)
def delete(database_url: str | None, job_id: int) -> None:
    """Delete a job that is not running."""
    with refusals():
        open_queue(database_url).delete(job_id)
    click.echo(f"deleted job {job_id}")


@click.command("cancel-batch")
@url_option
@click.argument("batch_id", type=int)
def cancel_batch(database_url: str | None, batch_id: int) -> None:
    """Cancel a batch's members not yet finished (running ones as soon as their workers hear)."""
    with refusals():
        info = open_queue(database_url).cancel_batch(batch_id)
    click.echo(f"batch {batch_id} cancelled: {info.cancelled} member(s) cancelled, "
               f"{info.running} still stopping")


@click.command()
@url_option
@click.argument("queue_name")
def pause(database_url: str | None, queue_name: str) -> None:
    """Stop workers from starting jobs of a queue (running ones finish)."""
    _pause_or_resume(database_url, queue_name, pause=True)


@click.command()
@url_option
@click.argument("queue_name")
def resume(database_url: str | None, queue_name: str) -> None:
    """Let workers start jobs of a paused queue again."""
    _pause_or_resume(database_url, queue_name, pause=False)


def _pause_or_resume(database_url: str | None, queue_name: str, *, pause: bool) -> None:
    with refusals():
        queue = open_queue(database_url)
        changed = queue.pause_queue(queue_name) if pause else queue.resume_queue(queue_name)
    done, unchanged = ("paused", "was already paused") if pause else ("resumed", "was not paused")
    click.echo(f"queue {queue_name} {done if changed else unchanged}")


@click.command()
@url_option
def prune(database_url: str | None) -> None:
    """Delete finished jobs past their retention, once."""
    click.echo(f"pruned {open_queue(database_url).prune()} job(s)")
