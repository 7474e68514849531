"""The Django app (activejob.contrib.django): the queue in the Django database, enqueues that
wait for the Django transaction, `migrate` making the tables, and the worker command running
jobs that use the ORM. The project is tests/django_site on a SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

django = pytest.importorskip("django")

from runner_support import WorkerProcess, wait_for  # noqa: E402

from activejob import ConfigurationError, JobNotFound, JobQueue, enqueuing  # noqa: E402
from activejob.errors import JobOptionsError  # noqa: E402

SITE = Path(__file__).resolve().parent / "django_site"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The test project set up in this process, migrated, on a fresh SQLite file."""
    from django.conf import settings

    if settings.configured:
        pytest.skip("Django was set up by another test module in this process")
    db = tmp_path_factory.mktemp("django") / "site.sqlite3"
    saved = {name: os.environ.get(name) for name in ("DJANGO_SITE_DB", "DJANGO_SETTINGS_MODULE")}
    os.environ["DJANGO_SITE_DB"] = str(db)  # read by the settings, here and in the worker processes
    os.environ["DJANGO_SETTINGS_MODULE"] = "django_site.settings"
    previous = enqueuing.set_deferral(None)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django_site.shop import jobs, models

    yield type("Site", (), {"db": db, "Order": models.Order, "ShipOrder": jobs.ShipOrder})
    enqueuing.set_deferral(previous)  # other modules' enqueues do not go through Django
    JobQueue.reset()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def ship_jobs() -> list[Any]:
    return JobQueue.get().list_jobs(name="ship_order", limit=1000)


def test_the_queue_lives_in_the_django_database(site: Any) -> None:
    assert JobQueue.get().settings.database_url == f"sqlite:///{site.db}"


def test_the_queue_url_follows_a_postgresql_database_entry(site: Any) -> None:
    from activejob.contrib.django.conf import url_of

    entry = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app", "PASSWORD": "p@ss",
             "HOST": "db", "PORT": "5433", "OPTIONS": {"sslmode": "require", "pool": True}}
    assert url_of(entry) == "postgresql+psycopg://app:p%40ss@db:5433/shop?sslmode=require"


def test_an_in_memory_sqlite_database_is_refused_with_the_fix(site: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from activejob.contrib.django.conf import url_of

    with pytest.raises(ImproperlyConfigured, match=r"DATABASES\['default'\] is an in-memory .*TEST"):
        url_of({"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})


def test_an_unknown_activejob_setting_is_refused_by_name(site: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from activejob.contrib.django import conf

    with override_settings(ACTIVEJOB={"CONCURENCY": 8}), pytest.raises(ImproperlyConfigured, match="'CONCURENCY'"):
        conf.load()


def test_migrate_creates_the_queue_tables(site: Any) -> None:
    from django.db import connection

    assert {"activejob_jobs", "activejob_events", "shop_order"} <= set(connection.introspection.table_names())


def test_a_job_enqueued_in_a_rolled_back_transaction_is_never_written(site: Any) -> None:
    from django.db import transaction

    before = len(ship_jobs())
    with pytest.raises(RuntimeError), transaction.atomic():
        order = site.Order.objects.create(email="gone@example.com")
        handle = site.ShipOrder.perform_later(order_id=order.pk)
        raise RuntimeError("the view failed")
    assert handle.id is None and not handle.committed
    assert len(ship_jobs()) == before


def test_a_job_enqueued_in_a_transaction_is_written_when_it_commits(site: Any) -> None:
    from django.db import transaction

    before = len(ship_jobs())
    with transaction.atomic():
        order = site.Order.objects.create(email="kept@example.com")
        handle = site.ShipOrder.perform_later(order_id=order.pk)
        assert handle.id is None and len(ship_jobs()) == before    # nothing written before the commit
        with pytest.raises(JobNotFound, match="waits for its transaction to commit"):
            _ = handle.status
    assert handle.committed and handle.status == "pending"
    assert JobQueue.get().get_job(handle.id).args == {"order_id": order.pk}


def test_a_job_enqueued_in_a_rolled_back_savepoint_is_dropped(site: Any) -> None:
    from django.db import transaction

    before = len(ship_jobs())
    with transaction.atomic():
        kept = site.ShipOrder.perform_later(order_id=1)
        with pytest.raises(RuntimeError), transaction.atomic():
            dropped = site.ShipOrder.perform_later(order_id=2)
            raise RuntimeError("inner block failed")
    assert kept.committed and not dropped.committed
    assert len(ship_jobs()) == before + 1


def test_a_bulk_enqueue_in_a_transaction_is_written_at_commit(site: Any) -> None:
    from django.db import transaction

    with transaction.atomic():
        handles = site.ShipOrder.perform_all_later([{"order_id": 3}, {"order_id": 4}])
        assert [h.id for h in handles] == [None, None]
    assert [JobQueue.get().get_job(h.id).args["order_id"] for h in handles] == [3, 4]


def test_outside_a_transaction_the_job_is_written_at_once(site: Any) -> None:
    handle = site.ShipOrder.perform_later(order_id=5)
    assert not hasattr(handle, "committed") and handle.status == "pending"


def test_on_commit_false_writes_at_once_inside_a_transaction(site: Any) -> None:
    from django.db import transaction

    with transaction.atomic():
        handle = site.ShipOrder.set(on_commit=False).perform_later(order_id=6)
        assert handle.id is not None and handle.status == "pending"


def test_on_commit_must_be_a_bool(site: Any) -> None:
    with pytest.raises(JobOptionsError, match="ship_order: .*on_commit.*must be True, False or None"):
        site.ShipOrder.set(on_commit="yes")


def test_on_commit_without_a_framework_hook_is_refused(site: Any) -> None:
    hook = enqueuing.set_deferral(None)
    try:
        with pytest.raises(ConfigurationError, match="ship_order: on_commit=True .* INSTALLED_APPS"):
            site.ShipOrder.set(on_commit=True).perform_later(order_id=7)
    finally:
        enqueuing.set_deferral(hook)


@pytest.mark.slow
def test_the_worker_command_runs_committed_jobs_with_the_orm(site: Any, tmp_path: Path) -> None:
    from django.db import transaction

    worker = WorkerProcess([sys.executable, str(SITE / "manage.py"), "activejob_worker", "--concurrency", "2"],
                           tmp_path / "worker.log")
    try:
        with transaction.atomic():
            order = site.Order.objects.create(email="ship@example.com")
            handle = site.ShipOrder.perform_later(order_id=order.pk)
        info = handle.wait(timeout=15)
        assert (info.status, info.result) == ("completed", {"order_id": order.pk, "shipped": 1})
        order.refresh_from_db()
        assert order.shipped
        worker.signal(signal.SIGTERM)
        assert worker.wait(15) == 0, worker.output()
        assert "ship_order" in worker.output()
    finally:
        worker.kill()



SHELL = """
from django.core.management import call_command
from django.db import transaction
call_command("migrate", verbosity=0)
from django_site.shop.jobs import ShipOrder
from django_site.shop.models import Order
try:
    with transaction.atomic():
        ShipOrder.perform_later(order_id=Order.objects.create(email="gone@example.com").pk)
        raise RuntimeError
except RuntimeError:
    pass
with transaction.atomic():
    order = Order.objects.create(email="kept@example.com")
    handle = ShipOrder.perform_later(order_id=order.pk)
print("job", handle.id, "order", order.pk)
"""


@pytest.mark.postgres
@pytest.mark.slow
def test_on_postgresql_a_worker_process_runs_the_committed_job_only(pg_url: str, tmp_path: Path) -> None:
    from runner_support import sql

    env = {**os.environ, "DJANGO_SITE_DB": pg_url}
    manage = [sys.executable, str(SITE / "manage.py")]
    done = subprocess.run([*manage, "shell", "-c", SHELL], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    job_id, order_id = (int(word) for word in done.stdout.split()[-3::2])
    os.environ["DJANGO_SITE_DB"], saved = pg_url, os.environ["DJANGO_SITE_DB"]
    try:
        worker = WorkerProcess([*manage, "activejob_worker"], tmp_path / "worker.log")
    finally:
        os.environ["DJANGO_SITE_DB"] = saved
    try:
        queue = JobQueue(pg_url)
        info = wait_for(lambda: (i := queue.get_job(job_id)) and i.finished and i, 20, what="the job to finish")
        assert info.status == "completed", worker.output()
        assert [row[0] for row in sql(pg_url, "SELECT name FROM activejob_jobs")] == ["ship_order"]
        assert sql(pg_url, "SELECT shipped FROM shop_order WHERE id = :id", id=order_id) == [(True,)]
        queue.close()
    finally:
        worker.kill()


def test_the_core_never_imports_django() -> None:
    code = ("import sys, activejob, activejob.cli, activejob.queue, activejob.testing\n"
            "print(sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', 'activejob.contrib'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_on_commit_with_a_session_is_refused(site: Any) -> None:
    with pytest.raises(JobOptionsError, match="ship_order: .*on_commit.*cannot be combined with session="):
        site.ShipOrder.set(session=object(), on_commit=True)


def test_a_batch_around_a_transaction_gets_the_members_written_at_commit(site: Any) -> None:
    from django.db import transaction

    from activejob import Batch

    with Batch(description="orders") as batch, transaction.atomic():
        site.ShipOrder.perform_all_later([{"order_id": 8}, {"order_id": 9}])
        assert JobQueue.get().get_batch(batch.id).total == 0  # held for the commit
    assert JobQueue.get().get_batch(batch.id).total == 2


def test_a_batch_inside_a_transaction_is_sealed_after_its_members_are_written(site: Any) -> None:
    from django.db import transaction

    from activejob import Batch

    queue = JobQueue.get()
    with transaction.atomic(), Batch(description="held orders") as batch:
        site.ShipOrder.perform_all_later([{"order_id": 10}, {"order_id": 11}])
    info = queue.get_batch(batch.id)
    assert info is not None and info.total == 2 and info.sealed and not info.finished
    queue.run_until_idle()
    assert queue.get_batch(batch.id).finished  # type: ignore[union-attr]
