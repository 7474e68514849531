"""Alembic environment for activejob's own tables (run through activejob.migrate)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from activejob import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from activejob.migrate import VERSION_TABLE

TABLES = {"activejob_jobs", "activejob_events", "activejob_workers"}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table":
        return name in TABLES
    return True


engine = context.config.attributes.get("engine")
if engine is None:
    from sqlalchemy import create_engine

    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite:///activejob.db")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
