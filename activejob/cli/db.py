"""`activejob db`: the schema, through the Alembic migrations shipped with activejob."""

from __future__ import annotations

import click

from .options import settings_for, url_option, usable_url


@click.group()
def db() -> None:
    """Database schema (Alembic migrations shipped with activejob)."""


@db.command("upgrade")
@url_option
@click.option("--revision", default="head", show_default=True)
def db_upgrade(database_url: str | None, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from .. import migrate
    from ..store import Store

    store = Store(_resolved(database_url, create=True))
    migrate.upgrade(store.engine, revision)
    click.echo(f"database at revision {migrate.current(store.engine)}")


@db.command("current")
@url_option
def db_current(database_url: str | None) -> None:
    """Show the schema revision of the database."""
    from .. import migrate
    from ..store import Store

    store = Store(_resolved(database_url))
    click.echo(f"{migrate.current(store.engine) or '(none)'} (newest: {migrate.head()})")


@db.command("downgrade")
@url_option
@click.argument("revision")
def db_downgrade(database_url: str | None, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes activejob's tables)."""
    from .. import migrate
    from ..store import Store

    migrate.downgrade(Store(_resolved(database_url)).engine, revision)


def _resolved(url: str | None, *, create: bool = False) -> str:
    return usable_url(settings_for(url).database_url, create=create)
