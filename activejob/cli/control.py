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
    """Cancel a pending or running job.

    A job that had already finished is left alone: its status is printed, and the exit code
    is 1."""
    from ..errors import InvalidTransition
    from ..models import FINISHED
    from ..records import STATUSES

    queue = open_queue(database_url)
    with refusals():
        try:
            # Guarded by the states a cancel changes: a finished job is left alone, and says so.
            click.echo(queue.cancel(job_id, expect=[s for s in STATUSES if s not in FINISHED]))
            return
        except InvalidTransition:
            info = queue.get_job(job_id)
            if info is None:  # deleted meanwhile
                raise
    click.echo(info.status)
    raise click.ClickException(f"job {job_id} had already finished ({info.status}): nothing was cancelled")


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
    """Cancel a batch's members not yet finished (running ones as soon as their workers hear).

    Prints how many members this call cancelled; a batch that had already finished is left
    alone, and the exit code is 1."""
    from .batches import batch_state

    queue = open_queue(database_url)
    before = queue.get_batch(batch_id)
    if before is None:
        raise click.ClickException(f"no batch with id {batch_id}")
    if before.finished:
        raise click.ClickException(f"batch {batch_id} had already finished ({batch_state(before)}): "
                                   "nothing was cancelled")
    with refusals():
        after = queue.cancel_batch(batch_id)
    # The batch's counts are its running totals: this call's share is what it added to them.
    cancelled = max(0, after.cancelled - before.cancelled)
    if before.cancelled_at is not None and not cancelled:
        click.echo(f"batch {batch_id} was cancelled already: nothing more was cancelled, "
                   f"{after.running} member(s) still stopping")
        return
    click.echo(f"batch {batch_id} cancelled: {cancelled} member(s) cancelled, {after.running} still stopping")


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
