"""activejob as a Django app: the queue lives in the Django database and joins its transactions.

    INSTALLED_APPS = [..., "activejob.contrib.django"]
    ACTIVEJOB = {"OPTIONS": {"concurrency": 8}}      # optional; see docs/howto/django.md

    python manage.py migrate              # creates the queue's tables too
    python manage.py activejob_worker     # runs the jobs of every app's jobs.py

Inside `transaction.atomic()` an enqueue waits for the commit (`transaction.on_commit`) and
is dropped by a rollback; `perform_later` then returns a `DeferredJobHandle` whose `id` is
None until the commit. `Job.set(on_commit=False)` writes at once.
"""

from .transactions import DeferredJobHandle

__all__ = ["DeferredJobHandle"]
