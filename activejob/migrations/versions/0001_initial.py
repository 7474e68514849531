"""initial schema: jobs, the event log, workers

Every secondary index is written on every insert and an enqueue commits little else, so
a new job touches only the indexes claiming needs: the ones on owner, parent, unique key
and finish time are partial (rows without those values are not in them). SQLite tables
use AUTOINCREMENT so ids are never reused (an old handle never reads another job, an
event id is never seen twice).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None

JOBS, EVENTS, WORKERS = 'activejob_jobs', 'activejob_events', 'activejob_workers'


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True,
                     autoincrement=True, nullable=False)


def _ts(name: str, nullable: bool = True) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _partial(name: str, table: str, columns: list[sa.TextClause | str], where: str, unique: bool = False) -> None:
    op.create_index(name, table, columns, unique=unique,
                    sqlite_where=sa.text(where), postgresql_where=sa.text(where))


def upgrade() -> None:
    op.create_table(
        JOBS,
        _id(),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('queue', sa.String(length=200), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('args', sa.Text(), nullable=False),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('traceback', sa.Text(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('max_retries', sa.Integer(), nullable=False),
        _ts('run_at', nullable=False),
        _ts('created_at', nullable=False),
        _ts('started_at'),
        _ts('finished_at'),
        sa.Column('worker_id', sa.String(length=200), nullable=True),
        sa.Column('lease_token', sa.String(length=64), nullable=True),
        _ts('lease_expires_at'),
        sa.Column('cancel_requested', sa.Boolean(), nullable=False),
        sa.Column('progress', sa.Float(), nullable=True),
        sa.Column('progress_message', sa.Text(), nullable=True),
        sa.Column('progress_phase', sa.String(length=200), nullable=True),
        sa.Column('progress_current', sa.BigInteger(), nullable=True),
        sa.Column('progress_total', sa.BigInteger(), nullable=True),
        sa.Column('checkpoint', sa.Text(), nullable=True),
        sa.Column('parent_id', sa.BigInteger(), nullable=True),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('unique_key', sa.String(length=255), nullable=True),
        sqlite_autoincrement=True,
    )
    # The claim query walks this in order and stops after a few rows.
    _partial('ix_activejob_jobs_due', JOBS, [sa.text('priority DESC'), 'run_at', 'id'], "status = 'pending'")
    _partial('ix_activejob_jobs_leases', JOBS, ['lease_expires_at'], "status = 'running'")
    _partial('ix_activejob_jobs_finished', JOBS, ['status', 'finished_at'], 'finished_at IS NOT NULL')
    _partial('ix_activejob_jobs_owner', JOBS, ['owner'], 'owner IS NOT NULL')
    _partial('ix_activejob_jobs_parent', JOBS, ['parent_id'], 'parent_id IS NOT NULL')
    _partial('uq_activejob_jobs_unique_key', JOBS, ['unique_key'], 'unique_key IS NOT NULL', unique=True)

    op.create_table(
        EVENTS,
        _id(),
        sa.Column('job_id', sa.BigInteger(), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('queue', sa.String(length=200), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempt', sa.Integer(), nullable=False),
        sa.Column('data', sa.Text(), nullable=True),
        _ts('created_at', nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_activejob_events_job', EVENTS, ['job_id', 'id'])
    _partial('ix_activejob_events_owner', EVENTS, ['owner', 'id'], 'owner IS NOT NULL')

    op.create_table(
        WORKERS,
        sa.Column('id', sa.String(length=200), primary_key=True, nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('queues', sa.Text(), nullable=False),
        sa.Column('job_types', sa.Text(), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        _ts('started_at', nullable=False),
        _ts('heartbeat_at', nullable=False),
    )
    op.create_index('ix_activejob_workers_heartbeat_at', WORKERS, ['heartbeat_at'])


def downgrade() -> None:
    op.drop_table(WORKERS)
    op.drop_table(EVENTS)
    op.drop_table(JOBS)
