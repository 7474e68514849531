"""What the commands need to know of activejob's schema: whether a database is at the newest
migration (every command but `db upgrade`, `worker` and `dashboard` only reads or changes
what is there, and never migrates), and Alembic's refusals of a revision, as one line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import click

_UNKNOWN = re.compile(r"Can't locate revision identified by '([^']*)'")


def revisions() -> list[str]:
    """activejob's migrations, oldest first."""
    from alembic.script import ScriptDirectory

    from ..migrate import config_for_scripts

    return [r.revision for r in reversed(list(ScriptDirectory.from_config(config_for_scripts()).walk_revisions()))]


def require_schema(url: str, *, why: str = "this command does not migrate") -> None:
    """Refuse, with one line (exit 1), a database without activejob's tables or behind its
    newest migration: a command that does not migrate would otherwise fail on a missing table
    or column, and one that did would change a database it was only pointed at. `why`: why
    this command does not migrate, for the message."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from ..dialects import normalize_url, pg_connect_args
    from ..migrate import current

    parsed = make_url(normalize_url(url))
    # A plain engine, not the store's: on SQLite that one also switches the file to WAL, a
    # change a database that turns out not to be activejob's should not get.
    args = pg_connect_args("activejob") if parsed.get_backend_name() == "postgresql" else {}
    engine = create_engine(parsed, poolclass=NullPool, connect_args=args)
    try:
        at = current(engine)
    finally:
        engine.dispose()
    known = revisions()
    shown = parsed.render_as_string(hide_password=True)
    if at is None:
        raise click.ClickException(f"no activejob tables in {shown}: run `activejob db upgrade` first ({why})")
    if at in known[:-1]:  # one this version knows, older than its newest (a newer one's goes on)
        raise click.ClickException(f"{shown} is at activejob's migration {at}, behind the newest, {known[-1]}: "
                                   f"run `activejob db upgrade` first ({why})")


@contextmanager
def migration_errors(revision: str, *, base: bool) -> Iterator[None]:
    """Alembic's refusal of `revision` (unknown, not reachable from where the database is) as
    one line, exit 1, instead of its traceback. `base`: the command also takes 'base'."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as error:
        message = " ".join(str(error).split())
        unknown = _UNKNOWN.search(message)
        if unknown and unknown.group(1) == revision:
            others = "head, base" if base else "head"
            raise click.ClickException(f"no migration {revision!r}; known: {', '.join(revisions())} "
                                       f"({others}, or relative such as -1)") from None
        if unknown:  # the database's own revision: written by a newer activejob than this one
            raise click.ClickException(f"the database is at migration {unknown.group(1)!r}, which this version "
                                       f"of activejob does not know (its newest is {revisions()[-1]})") from None
        raise click.ClickException(f"cannot migrate to {revision!r}: {message}") from None
