"""The Django app: configures the process-wide queue on the Django database at start-up,
joins Django transactions, creates the queue's tables on `migrate`, and imports every
installed app's `jobs` module."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules

import activejob
from activejob import enqueuing
from activejob.queue import JobQueue

from . import conf
from .transactions import Deferral


def configure_queue(**overrides: Any) -> JobQueue:
    """Make the process-wide queue from `settings.ACTIVEJOB`, on the Django database as its
    connection has it now; `overrides` win over ACTIVEJOB['OPTIONS'].

        queue = configure_queue(concurrency=4)
    """
    config = conf.load()
    options = {"auto_migrate": False, **config.options, **overrides}  # migrate makes the tables, not start-up
    return activejob.configure(conf.database_url(config), **options)


def current_queue() -> JobQueue:
    """The process-wide queue, made again when the Django database it follows has moved (the
    test runner renames it to `test_...` after start-up)."""
    queue = JobQueue.configured()
    url = conf.database_url(conf.load())
    if queue is None or queue.settings.database_url != url:
        queue = configure_queue()
    return queue


def migrate_queue() -> JobQueue:
    """Bring the queue's tables to the newest migration (what `manage.py migrate` does for them)."""
    queue = current_queue()
    queue.store.upgrade()
    return queue


def _after_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    if using == conf.load().database:
        migrate_queue()


class ActiveJobConfig(AppConfig):  # type: ignore[misc]  # Django ships no type hints
    """`INSTALLED_APPS += ["activejob.contrib.django"]`; settings in `ACTIVEJOB` (see `conf.DEFAULTS`)."""

    name = "activejob.contrib.django"
    label = "activejob"
    verbose_name = "activejob"

    def ready(self) -> None:
        config = conf.load()
        configure_queue()
        enqueuing.set_deferral(Deferral(config.database, automatic=config.on_commit))
        post_migrate.connect(_after_migrate, sender=self, dispatch_uid="activejob.migrate")
        if config.jobs_module:
            autodiscover_modules(config.jobs_module)
