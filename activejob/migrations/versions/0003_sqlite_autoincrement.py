"""SQLite: never reuse job or event ids (AUTOINCREMENT)

Without AUTOINCREMENT, SQLite hands out max(id) + 1, so deleting (or pruning) the
newest job gave its id to the next job: an old JobHandle then read another job, and
the `deleted` event was filed under the new job. Deleting a job's newest events could
likewise reuse event ids that consumers had already seen. PostgreSQL sequences never
reuse ids, so there is nothing to do there.

Rebuilding a table in batch mode reflects its indexes, and SQLite's reflection drops
the DESC of `ix_activejob_jobs_due` (0002's rebuild already lost it); it is made again
here as the claim query needs it: priority DESC, run_at, id.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ('activejob_jobs', 'activejob_events')


def _due_index() -> None:
    op.drop_index('ix_activejob_jobs_due', table_name='activejob_jobs')
    op.create_index(
        'ix_activejob_jobs_due', 'activejob_jobs', [sa.text('priority DESC'), 'run_at', 'id'], unique=False,
        sqlite_where=sa.text("status = 'pending'"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': True}):
            pass
    _due_index()


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs={'sqlite_autoincrement': False}):
            pass
    _due_index()
