"""workflows: batches, dependencies, unique modes, rate limits, argument versions, job metadata

Backward compatible for workers of the previous release: every new column is nullable and
they never name one. The unique index changes its predicate: a key is held only while its
job is unfinished (`unique_until` NULL or 'finished'), only until it starts ('started'),
until `unique_expires_at` ('time', released by marking it 'expired'), so a key taken by a job
that finished before this migration is free again.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# Also in models.py (Job.__table_args__) and in the store's ON CONFLICT target.
UNIQUE_HELD = (
    "unique_key IS NOT NULL AND CASE WHEN unique_until = 'time' THEN true "
    "WHEN unique_until = 'expired' THEN false "
    "WHEN unique_until = 'started' THEN status IN ('pending', 'waiting') "
    "ELSE status IN ('pending', 'running', 'waiting') END"
)


def _ts(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table('activejob_jobs') as b:
        b.add_column(sa.Column('batch_id', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('args_version', sa.Integer(), nullable=True))
        b.add_column(sa.Column('meta', sa.Text(), nullable=True))
        b.add_column(sa.Column('unique_until', sa.String(length=20), nullable=True))
        b.add_column(_ts('unique_expires_at'))
        b.add_column(sa.Column('rate_key', sa.String(length=255), nullable=True))
        b.add_column(sa.Column('has_dependents', sa.Boolean(), nullable=True))
    op.drop_index('uq_activejob_jobs_unique_key', table_name='activejob_jobs')
    op.create_index('uq_activejob_jobs_unique_key', 'activejob_jobs', ['unique_key'], unique=True,
                    sqlite_where=sa.text(UNIQUE_HELD), postgresql_where=sa.text(UNIQUE_HELD))
    op.create_index('ix_activejob_jobs_unique_keys', 'activejob_jobs', ['unique_key'],
                    sqlite_where=sa.text('unique_key IS NOT NULL'),
                    postgresql_where=sa.text('unique_key IS NOT NULL'))
    op.create_index('ix_activejob_jobs_batch', 'activejob_jobs', ['batch_id', 'status'],
                    sqlite_where=sa.text('batch_id IS NOT NULL'), postgresql_where=sa.text('batch_id IS NOT NULL'))
    op.create_table(
        'activejob_batches',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('callbacks', sa.Text(), nullable=True),
        _ts('created_at', nullable=False),
        _ts('sealed_at'),
        _ts('finished_at'),
        _ts('failed_at'),
        _ts('cancelled_at'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_activejob_batches_open', 'activejob_batches', ['id'],
                    sqlite_where=sa.text('finished_at IS NULL'), postgresql_where=sa.text('finished_at IS NULL'))
    op.create_table(
        'activejob_dependencies',
        sa.Column('job_id', sa.BigInteger(), primary_key=True, nullable=False),
        sa.Column('depends_on_id', sa.BigInteger(), primary_key=True, nullable=False),
        sa.Column('run_on_failure', sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index('ix_activejob_dependencies_on', 'activejob_dependencies', ['depends_on_id'])
    op.create_table(
        'activejob_rate_starts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(length=255), nullable=False),
        _ts('started_at', nullable=False),
    )
    op.create_index('ix_activejob_rate_starts_key', 'activejob_rate_starts', ['key', 'started_at'])


def downgrade() -> None:
    op.drop_table('activejob_rate_starts')
    op.drop_table('activejob_dependencies')
    op.drop_table('activejob_batches')
    op.drop_index('ix_activejob_jobs_batch', table_name='activejob_jobs')
    op.drop_index('ix_activejob_jobs_unique_keys', table_name='activejob_jobs')
    op.drop_index('uq_activejob_jobs_unique_key', table_name='activejob_jobs')
    op.create_index('uq_activejob_jobs_unique_key', 'activejob_jobs', ['unique_key'], unique=True,
                    sqlite_where=sa.text('unique_key IS NOT NULL'),
                    postgresql_where=sa.text('unique_key IS NOT NULL'))
    with op.batch_alter_table('activejob_jobs') as b:
        for column in ('has_dependents', 'rate_key', 'unique_expires_at', 'unique_until', 'meta',
                       'args_version', 'batch_id'):
            b.drop_column(column)
