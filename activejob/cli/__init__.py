"""The `activejob` command: run workers, migrate, inspect and control jobs.

    activejob worker --database-url sqlite:///jobs.db --import myapp.jobs --concurrency 8
    activejob db upgrade
    activejob jobs --status failed
    activejob enqueue send_email '{"to": "a@example.com"}' --import myapp.jobs
    activejob dashboard --port 8000
"""

from __future__ import annotations

import logging
from typing import Any

import click

from . import batches, control, dashboard, db, enqueue, jobs, overview, worker
from .errors import database_errors


class _Commands(click.Group):
    """Every command's database errors are reported as one line (see database_errors)."""

    def invoke(self, ctx: click.Context) -> Any:
        with database_errors():
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


# The modules define their commands unattached and the group takes them here: it is the one
# place that lists them all, and no module imports the package back (an import cycle).
for _command in (
    worker.worker, db.db, dashboard.dashboard,
    jobs.jobs, jobs.show, jobs.explain, batches.batches, batches.batch,
    overview.stats, overview.queues, overview.workers, overview.types, overview.cron,
    enqueue.enqueue,
    control.cancel, control.retry, control.delete, control.cancel_batch, control.pause, control.resume, control.prune,
):
    main.add_command(_command)


def run() -> None:
    main(prog_name="activejob")
