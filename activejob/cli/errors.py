"""How a command reports a mistake: its message alone on one line, no traceback, and an exit
code that says whether starting again can help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from ..errors import ActiveJobError, ConfigurationError
from ..supervisor import EX_CONFIG, USAGE_ERROR


# Mistakes in the configuration: their message alone, no traceback, and an exit code that
# tells the supervisor (or a process manager) that starting again will not help.
class InvalidSetting(click.ClickException):
    exit_code = USAGE_ERROR


class ImportFailed(click.ClickException):
    exit_code = EX_CONFIG


@contextmanager
def valid_settings() -> Iterator[None]:
    try:
        yield
    except ConfigurationError as error:
        raise InvalidSetting(str(error)) from None


BACKENDS = "SQLite (sqlite:///jobs.db) or PostgreSQL (postgresql://user@host/app)"


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached, does not exist or cannot be opened: one line, exit 1."""
    from sqlalchemy.exc import InterfaceError, NoSuchModuleError, OperationalError

    try:
        yield
    except (OperationalError, InterfaceError) as error:
        reason = " ".join(str(error.orig if error.orig is not None else error).split())
        raise click.ClickException(f"cannot use the database: {reason}") from None
    except NoSuchModuleError as error:
        raise click.ClickException(f"unsupported database: {error}; activejob runs on {BACKENDS}") from None


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal (no such job, a job in the wrong state, a bad queue name) is the user's to
    fix: show its message and exit 1, not a traceback."""
    try:
        yield
    except (ActiveJobError, ValueError) as error:
        raise click.ClickException(str(error)) from None
