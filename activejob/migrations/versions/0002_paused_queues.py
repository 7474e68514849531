"""paused queues: a row per queue whose jobs workers leave alone

Backward compatible: workers of the previous release do not know the table and go on
claiming from every queue; upgrade the schema, then the workers.

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
    op.create_table(
        'activejob_paused_queues',
        sa.Column('queue', sa.String(length=200), primary_key=True, nullable=False),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('activejob_paused_queues')
