"""batch events: the event log also holds what happens to a batch (failed, finished,
cancelled), with `batch_id` set and no `job_id`

Backward compatible for workers of the previous release: they always write a `job_id` and
never name `batch_id`. On SQLite, making `job_id` nullable rebuilds the table; the rebuild
keeps AUTOINCREMENT, so event ids still only grow (the relay's cursor depends on it).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_BATCH = 'batch_id IS NOT NULL'


def upgrade() -> None:
    with op.batch_alter_table('activejob_events', table_kwargs={'sqlite_autoincrement': True}) as b:
        b.alter_column('job_id', existing_type=sa.BigInteger(), nullable=True)
        b.add_column(sa.Column('batch_id', sa.BigInteger(), nullable=True))
    op.create_index('ix_activejob_events_batch', 'activejob_events', ['batch_id', 'id'],
                    sqlite_where=sa.text(_BATCH), postgresql_where=sa.text(_BATCH))


def downgrade() -> None:
    op.drop_index('ix_activejob_events_batch', table_name='activejob_events')
    op.execute("DELETE FROM activejob_events WHERE job_id IS NULL")
    with op.batch_alter_table('activejob_events', table_kwargs={'sqlite_autoincrement': True}) as b:
        b.drop_column('batch_id')
        b.alter_column('job_id', existing_type=sa.BigInteger(), nullable=False)
