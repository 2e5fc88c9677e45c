"""Served-list log retention: indexes for pruning by age (served pages, ranked lists) and for
the check that no shortlist item still refers to a list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('served_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_served_lists_at'), ['at'], unique=False)

    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ranked_lists_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('shortlist_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shortlist_items_list_version'), ['list_version'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shortlist_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shortlist_items_list_version'))

    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ranked_lists_created_at'))

    with op.batch_alter_table('served_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_served_lists_at'))
