"""Idempotency keys scoped per API key, with the hash of what the keyed request asked for; ranked
lists store the part that was served or shortlisted (``n_stored`` of ``n_items`` candidates).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# SQLite keeps 0001's unique constraint unnamed: batch mode reflects it under this name to drop it.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _unique_name(table: str, columns: list[str]) -> str:
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if constraint["column_names"] == columns and constraint.get("name"):
            return constraint["name"]
    return NAMING["uq"] % {"table_name": table, "column_0_name": columns[0]}


def upgrade() -> None:
    old_unique = _unique_name('reviews', ['idempotency_key'])
    with op.batch_alter_table('reviews', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
        batch_op.drop_constraint(old_unique, type_='unique')
        batch_op.create_unique_constraint('uq_reviews_key_id_idempotency_key', ['key_id', 'idempotency_key'])

    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('n_stored', sa.Integer(), nullable=True))
    op.execute("UPDATE ranked_lists SET n_stored = n_items")  # every list stored so far is whole
    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.alter_column('n_stored', existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.drop_column('n_stored')

    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_constraint('uq_reviews_key_id_idempotency_key', type_='unique')
        batch_op.create_unique_constraint('uq_reviews_idempotency_key', ['idempotency_key'])
        batch_op.drop_column('request_hash')
