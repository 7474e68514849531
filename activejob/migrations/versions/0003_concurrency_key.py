"""concurrency key: what a per-key concurrency limit counts a job under

Backward compatible: a nullable column that workers of the previous release never name.
No index: the limit counts running jobs, which the leases index already finds.

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


def upgrade() -> None:
    op.add_column('activejob_jobs', sa.Column('concurrency_key', sa.String(length=255), nullable=True))


def downgrade() -> None:
    op.drop_column('activejob_jobs', 'concurrency_key')  # SQLite 3.35+ drops a column in place
