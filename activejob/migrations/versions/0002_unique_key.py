"""unique key: at most one job per key (idempotent enqueue, recurring slots)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('activejob_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unique_key', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint('uq_activejob_jobs_unique_key', ['unique_key'])


def downgrade() -> None:
    with op.batch_alter_table('activejob_jobs', schema=None) as batch_op:
        batch_op.drop_constraint('uq_activejob_jobs_unique_key', type_='unique')
        batch_op.drop_column('unique_key')
