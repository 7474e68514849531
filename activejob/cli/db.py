"""`activejob db`: the schema, through the Alembic migrations shipped with activejob."""

from __future__ import annotations

import click

from .options import settings_for, url_option, usable_url
from .schema import migration_errors


@click.group()
def db() -> None:
    """Database schema (Alembic migrations shipped with activejob)."""


@db.command("upgrade")
@url_option
@click.argument("revision", required=False, default=None)
@click.option("--revision", "revision_option", default=None, metavar="REVISION",
              help="The same as the REVISION argument.")
def db_upgrade(database_url: str | None, revision: str | None, revision_option: str | None) -> None:
    """Apply migrations up to REVISION (default: head, the newest); create a missing SQLite file."""
    from .. import migrate
    from ..store import Store

    if revision is not None and revision_option is not None and revision != revision_option:
        raise click.UsageError(f"two revisions, {revision!r} and --revision {revision_option!r}: give one")
    target = revision or revision_option or "head"
    store = Store(_resolved(database_url, create=True))
    try:
        with migration_errors(target, base=False):
            migrate.upgrade(store.engine, target)
        click.echo(f"database at revision {migrate.current(store.engine)}")
    finally:
        store.dispose()


@db.command("current")
@url_option
def db_current(database_url: str | None) -> None:
    """Show the schema revision of the database."""
    from .. import migrate
    from ..store import Store

    store = Store(_resolved(database_url))
    try:
        click.echo(f"{migrate.current(store.engine) or '(none)'} (newest: {migrate.head()})")
    finally:
        store.dispose()


@db.command("downgrade")
@url_option
@click.argument("revision")
def db_downgrade(database_url: str | None, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes activejob's tables)."""
    from .. import migrate
    from ..store import Store

    store = Store(_resolved(database_url))
    try:
        with migration_errors(revision, base=True):
            migrate.downgrade(store.engine, revision)
    finally:
        store.dispose()


def _resolved(url: str | None, *, create: bool = False) -> str:
    return usable_url(settings_for(url).database_url, create=create)
