"""queue and type indexes, on PostgreSQL: each queue's and each job type's due jobs in
claim order, so a worker of named queues, and a claim that asks for one limited type,
seek to their jobs instead of walking the due index past every other queue's or type's
backlog (120 ms a claim behind 500,000 due jobs of another queue).

PostgreSQL only: there an enqueue's cost is its commit, and two more index entries are
lost in it; on SQLite they would cost a seventh of every enqueue (measured), so SQLite
keeps the one due index (docs/deployment.md says what that means for a worker of named
queues). Building them reads the table once, and writes to the jobs table wait for that
read (about a second per million jobs). Backward compatible: older workers write jobs as
before, and the indexes keep up.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

INDEXES = {'ix_activejob_jobs_queue_due': 'queue', 'ix_activejob_jobs_name_due': 'name'}


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for index, column in INDEXES.items():
        op.create_index(index, 'activejob_jobs', [column, sa.text('priority DESC'), 'run_at', 'id'],
                        postgresql_where=sa.text("status = 'pending'"))


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for index in INDEXES:
        op.drop_index(index, table_name='activejob_jobs')
