"""`python manage.py activejob_worker`: run jobs until SIGTERM/SIGINT, with Django set up,
so jobs can use the ORM. Start it several times for more processes."""

from __future__ import annotations

import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from activejob import logs
from activejob.definition import registry

from ...apps import configure_queue


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Run activejob jobs (those of every installed app's jobs.py) until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", "-c", type=int, help="Jobs at once (default: ACTIVEJOB['OPTIONS'] or 10).")
        parser.add_argument("--queues", "-q", help="Comma-separated queues to take jobs from (default: all).")
        parser.add_argument("--poll-interval", type=float, help="Seconds between polls when nothing wakes us.")
        parser.add_argument("--shutdown-grace", type=float, help="Seconds running jobs get on SIGTERM.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not logging.getLogger().handlers:  # Django's LOGGING usually leaves the root logger bare
            logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logs.install()
        logging.getLogger("activejob").setLevel(logging.INFO if options["verbosity"] >= 1 else logging.WARNING)
        given = {key: options[key] for key in ("concurrency", "queues", "poll_interval", "shutdown_grace")
                 if options[key] is not None}
        queue = configure_queue(auto_migrate=True, **given)  # as `activejob worker`: tables made if missing
        if not registry:
            self.stderr.write("activejob: no job types are registered: add a jobs.py to an installed app")
        self.stdout.write(f"activejob worker on {queue.database_url}: {', '.join(sorted(registry))}")
        queue.work()
