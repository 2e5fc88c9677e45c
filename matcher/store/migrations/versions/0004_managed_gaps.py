"""Gaps managed in the service: declared by chain leaders and admins, or the chain map's gaps
edited, closed and reopened; a ``gaps`` counter workers poll to pick up changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gaps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=False),
    sa.Column('chain_id', sa.String(length=100), nullable=False),
    sa.Column('segment_id', sa.String(length=100), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('priority', sa.String(length=20), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('origin', sa.String(length=20), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('created_by_key_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=250), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('created_by_key_id', 'idempotency_key', name='uq_gaps_created_by_key_id_idempotency_key'),
    sa.UniqueConstraint('gap_id', name='uq_gaps_gap_id')
    )
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gaps_chain_id'), ['chain_id'], unique=False)
    op.bulk_insert(sa.table('counters', sa.column('name', sa.String), sa.column('value', sa.BigInteger)),
                   [{'name': 'gaps', 'value': 0}])


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'gaps'")
    with op.batch_alter_table('gaps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gaps_chain_id'))
    op.drop_table('gaps')
