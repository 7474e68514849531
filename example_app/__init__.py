"""The activejob example application: a web page where you start jobs and watch them run.

    make example          # or: .venv/bin/python -m example_app

It serves http://127.0.0.1:8000 with uvicorn, runs an in-process worker in the app's
lifespan, and keeps its jobs in `example.db` in the working directory
(`ACTIVEJOB_DATABASE_URL` overrides).

    make example-pg       # or: .venv/bin/python -m example_app.pg --database-url postgresql://...

runs it on PostgreSQL instead, the jobs run by separate `activejob worker` processes
(`example_app/pg.py`). Its jobs (`jobs.py`): a report with phases, a flaky import that retries,
emails, a fan-out to child jobs, a batch of thumbnails with a callback, and a nightly cleanup
on a cron schedule.
"""

from .app import create_app

__all__ = ["create_app"]
