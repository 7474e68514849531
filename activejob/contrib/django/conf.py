"""The app's settings (`ACTIVEJOB` in the Django settings) and the queue's database URL,
derived from the Django database it shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from sqlalchemy.engine import URL

DEFAULTS: dict[str, Any] = {
    "DATABASE": "default",  # the Django database whose tables and transactions the queue shares
    "DATABASE_URL": None,  # a URL of the queue's own instead (transactions are still joined on DATABASE)
    "ON_COMMIT": True,  # enqueues inside atomic() wait for the commit unless set(on_commit=False)
    "JOBS_MODULE": "jobs",  # imported from every installed app at start-up (None: import nothing)
    "OPTIONS": {},  # passed to activejob.configure: concurrency, queues, poll_interval, ...
}

# libpq connection parameters worth carrying over from DATABASES[...]["OPTIONS"]; Django's own
# options there (pool, isolation_level, ...) mean nothing to a plain connection.
_LIBPQ = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options",
          "service", "passfile", "target_session_attrs")


@dataclass(frozen=True)
class Settings:
    """`settings.ACTIVEJOB`, checked, over the defaults.

        ACTIVEJOB = {"DATABASE": "default", "OPTIONS": {"concurrency": 8}}
    """

    database: str = "default"
    database_url: str | None = None
    on_commit: bool = True
    jobs_module: str | None = "jobs"
    options: dict[str, Any] = field(default_factory=dict)


def load() -> Settings:
    """The `ACTIVEJOB` setting, refused with a message naming the key when it is wrong."""
    from django.conf import settings

    given = getattr(settings, "ACTIVEJOB", {}) or {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured(f"ACTIVEJOB must be a dict, got {type(given).__name__}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(f"ACTIVEJOB: unknown key(s) {unknown}; use {', '.join(DEFAULTS)}")
    values = {**DEFAULTS, **given}
    if values["DATABASE"] not in settings.DATABASES:
        raise ImproperlyConfigured(f"ACTIVEJOB['DATABASE'] is {values['DATABASE']!r}, which is not in DATABASES "
                                   f"({', '.join(settings.DATABASES)})")
    if not isinstance(values["OPTIONS"], dict):
        raise ImproperlyConfigured(f"ACTIVEJOB['OPTIONS'] must be a dict of activejob.configure options, "
                                   f"got {values['OPTIONS']!r}")
    if values["JOBS_MODULE"] is not None and not isinstance(values["JOBS_MODULE"], str):
        raise ImproperlyConfigured(f"ACTIVEJOB['JOBS_MODULE'] must be a module name or None, "
                                   f"got {values['JOBS_MODULE']!r}")
    if not isinstance(values["ON_COMMIT"], bool):
        raise ImproperlyConfigured(f"ACTIVEJOB['ON_COMMIT'] must be True or False, got {values['ON_COMMIT']!r}")
    return Settings(database=values["DATABASE"], database_url=values["DATABASE_URL"], on_commit=values["ON_COMMIT"],
                    jobs_module=values["JOBS_MODULE"], options=dict(values["OPTIONS"]))


def database_url(config: Settings) -> str:
    """The queue's URL: `DATABASE_URL` if given, else the one of the Django database it shares
    (as that connection has it now, so a test database's name is the one used)."""
    if config.database_url:
        return config.database_url
    from django.db import connections

    return url_of(connections[config.database].settings_dict, config.database)


def url_of(database: dict[str, Any], alias: str = "default") -> str:
    """A SQLAlchemy URL for one entry of Django's DATABASES (SQLite or PostgreSQL).

        url_of({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/app/db.sqlite3"})
        # 'sqlite:////srv/app/db.sqlite3'
    """
    engine = str(database.get("ENGINE", ""))
    name = str(database.get("NAME") or "")
    if engine.endswith(".sqlite3"):
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ImproperlyConfigured(
                f"DATABASES[{alias!r}] is an in-memory SQLite database, which activejob's workers cannot share: "
                "give it a file (for tests: DATABASES[...]['TEST'] = {'NAME': 'test.sqlite3'}), "
                "or set ACTIVEJOB['DATABASE_URL']")
        return f"sqlite:///{name}"
    if engine.endswith((".postgresql", ".postgis")):
        options = database.get("OPTIONS") or {}
        port = database.get("PORT")
        url = URL.create(
            "postgresql+psycopg", username=database.get("USER") or None, password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None, port=int(port) if port else None, database=name or None,
            query={key: str(options[key]) for key in _LIBPQ if key in options})
        return url.render_as_string(hide_password=False)
    raise ImproperlyConfigured(f"DATABASES[{alias!r}] uses {engine or 'no ENGINE'}; activejob keeps its queue in "
                               "SQLite or PostgreSQL: set ACTIVEJOB['DATABASE_URL'] to one of those")
