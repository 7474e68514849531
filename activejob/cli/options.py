"""The options most commands share, and what they become: the app's job modules imported,
the settings, the queue."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from ..config import ENV_URL, Settings
from .errors import BACKENDS, ImportFailed, valid_settings

url_option = click.option("--database-url", envvar=ENV_URL, default=None, show_envvar=True,
                          help="Database URL (default: sqlite:///activejob.db in the working directory).")
imports_option = click.option("--import", "imports", multiple=True, envvar="ACTIVEJOB_IMPORT",
                              help="Module that defines jobs (repeatable).")


def import_modules(modules: tuple[str, ...]) -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`, so app modules import
    for name in modules:
        for part in name.split(","):
            if part.strip():
                try:
                    importlib.import_module(part.strip())
                except Exception as error:  # a module's own code can fail in any way
                    raise ImportFailed(f"cannot import {part.strip()!r}: {_import_error(error)}") from None


def _import_error(error: Exception) -> str:
    """The error and the module-level line that raised it: enough to find a typo or a missing
    dependency in the app's modules without a traceback through importlib."""
    if isinstance(error, SyntaxError):
        return str(error)  # it names the file and line already
    text = str(error) if isinstance(error, ImportError) else f"{type(error).__name__}: {error}"
    lines = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.name == "<module>"]
    if lines:
        text += f" ({lines[-1].filename}, line {lines[-1].lineno})"
    return text


def settings_for(url: str | None, **options: Any) -> Settings:
    if url is not None and url.strip():  # an empty one is the settings' to refuse (exit 2)
        _supported(url)  # first: the settings refuse another scheme too, but as an invalid option
    with valid_settings():
        return Settings.build(database_url=url, **{k: v for k, v in options.items() if v is not None})


# The long-running commands make a SQLite file that does not exist yet, and migrate, as the
# app's own `activejob.configure()` does (unless auto_migrate is off): started side by side on a
# new project, neither waits for the other. Every other command only reads or changes what is
# there, so a missing file is a typo, and a database without activejob's tables (or behind its
# newest migration) is refused rather than changed: `activejob db upgrade` migrates.
_LONG_RUNNING = frozenset({"worker", "dashboard"})

auto_migrate_option = click.option(
    "--auto-migrate/--no-auto-migrate", "auto_migrate", default=None, envvar="ACTIVEJOB_AUTO_MIGRATE",
    show_envvar=True,
    help="Create or upgrade activejob's tables at start (default: yes, unless the imported modules "
         "configure(auto_migrate=False)); off: a database not at the newest migration is refused.")


def open_queue(url: str | None, **options: Any) -> Any:
    """The queue for this command. A long-running one (_LONG_RUNNING) may make a missing SQLite
    file and migrate, as the `auto_migrate` setting says: the option's (None: not given), else
    that of the queue the imported modules configured, else on. Any other command never
    migrates, and refuses a database not at the newest migration."""
    from ..queue import JobQueue
    from .schema import require_schema

    configured = JobQueue.configured()
    if configured is not None and configured.settings.recurring and options.get("recurring") is None:
        # Schedules the imported modules declared (configure(recurring=[...])) have no option
        # here: the queue made for this command keeps them.
        options["recurring"] = configured.settings.recurring
    if configured is not None and configured.settings.middleware and options.get("middleware") is None:
        options["middleware"] = configured.settings.middleware  # likewise configure(middleware=[...])
    long_running = click.get_current_context().info_name in _LONG_RUNNING
    if not long_running:
        options["auto_migrate"] = False
    elif options.get("auto_migrate") is None:
        options["auto_migrate"] = configured.settings.auto_migrate if configured is not None else True
    database_url = usable_url(settings_for(url, **options).database_url, create=options["auto_migrate"])
    if not options["auto_migrate"]:
        require_schema(database_url, why="auto-migrate is off" if long_running else "this command does not migrate")
    with valid_settings():
        return JobQueue.configure(url, **{k: v for k, v in options.items() if v is not None})


def usable_url(url: str, *, create: bool) -> str:
    """`url` if activejob can use it: a SQLite or PostgreSQL URL, and for SQLite a file that
    exists unless this command may create it. A mistyped path would otherwise make, and
    migrate, a new empty database, and `jobs` would calmly list nothing."""
    parsed = _supported(url)
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:") or "uri" in parsed.query
    if backend == "sqlite" and not create and not in_memory and not Path(database).exists():
        raise click.ClickException(
            f"no SQLite database at {Path(database).resolve()}: check --database-url (or {ENV_URL}); "
            "`activejob db upgrade` or a worker creates it")
    return url


def _supported(url: str) -> Any:
    """`url` parsed, if it is a SQLite or PostgreSQL URL; else one line, exit 1 (a database the
    command cannot use, as one it cannot reach)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from ..dialects import normalize_url

    try:
        parsed = make_url(normalize_url(url))
    except ArgumentError:
        raise click.ClickException(f"{url!r} is not a database URL: activejob runs on {BACKENDS}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise click.ClickException(f"unsupported database {backend!r} ({shown}): activejob runs on {BACKENDS}")
    return parsed
