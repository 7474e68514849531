"""initial schema

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


def upgrade() -> None:
    op.create_table('activejob_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('activejob_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activejob_events_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_activejob_events_job', ['job_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activejob_events_owner'), ['owner'], unique=False)

    op.create_table('activejob_jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
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
    sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('lease_token', sa.String(length=64), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=True),
    sa.Column('progress_message', sa.Text(), nullable=True),
    sa.Column('progress_phase', sa.String(length=200), nullable=True),
    sa.Column('progress_current', sa.BigInteger(), nullable=True),
    sa.Column('progress_total', sa.BigInteger(), nullable=True),
    sa.Column('checkpoint', sa.Text(), nullable=True),
    sa.Column('parent_id', sa.BigInteger(), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('activejob_jobs', schema=None) as batch_op:
        # The claim query walks this index in order and stops after a few rows.
        batch_op.create_index(
            'ix_activejob_jobs_due', [sa.text('priority DESC'), 'run_at', 'id'], unique=False,
            sqlite_where=sa.text("status = 'pending'"), postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            'ix_activejob_jobs_leases', ['lease_expires_at'], unique=False,
            sqlite_where=sa.text("status = 'running'"), postgresql_where=sa.text("status = 'running'"),
        )
        batch_op.create_index(batch_op.f('ix_activejob_jobs_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_activejob_jobs_owner'), ['owner'], unique=False)
        batch_op.create_index(batch_op.f('ix_activejob_jobs_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_activejob_jobs_queue'), ['queue'], unique=False)
        batch_op.create_index('ix_activejob_jobs_status_finished', ['status', 'finished_at'], unique=False)

    op.create_table('activejob_workers',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('queues', sa.Text(), nullable=False),
    sa.Column('job_types', sa.Text(), nullable=False),
    sa.Column('concurrency', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('activejob_workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activejob_workers_heartbeat_at'), ['heartbeat_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('activejob_workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activejob_workers_heartbeat_at'))

    op.drop_table('activejob_workers')
    with op.batch_alter_table('activejob_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_activejob_jobs_status_finished')
        batch_op.drop_index('ix_activejob_jobs_due')
        batch_op.drop_index(batch_op.f('ix_activejob_jobs_queue'))
        batch_op.drop_index(batch_op.f('ix_activejob_jobs_parent_id'))
        batch_op.drop_index(batch_op.f('ix_activejob_jobs_owner'))
        batch_op.drop_index(batch_op.f('ix_activejob_jobs_name'))
        batch_op.drop_index('ix_activejob_jobs_leases')

    op.drop_table('activejob_jobs')
    with op.batch_alter_table('activejob_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activejob_events_owner'))
        batch_op.drop_index('ix_activejob_events_job')
        batch_op.drop_index(batch_op.f('ix_activejob_events_created_at'))

    op.drop_table('activejob_events')
