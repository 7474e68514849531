"""`python manage.py activejob_migrate`: create or upgrade the queue's tables (`migrate` does it too)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from activejob import migrate

from ...apps import migrate_queue


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type hints
    help = "Create or upgrade activejob's tables in the Django database."

    def handle(self, *args: Any, **options: Any) -> None:
        queue = migrate_queue()
        self.stdout.write(f"activejob: {queue.database_url} at revision {migrate.current(queue.store.engine)}")
