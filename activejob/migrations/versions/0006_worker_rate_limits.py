"""worker rate limits: a worker's row holds the queue rate limits it keeps, so that every
process (the CLI, the dashboard, `queue.explain`) can tell them, not only the worker's own

Backward compatible: a worker of the previous release leaves the column NULL (it names
no columns it does not know), which reads as no queue rate limits.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('activejob_workers') as b:
        b.add_column(sa.Column('queue_rate_limits', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('activejob_workers') as b:
        b.drop_column('queue_rate_limits')
