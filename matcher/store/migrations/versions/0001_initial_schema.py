"""Initial schema: keys, audit log, ranked and served lists, shortlists, items, reviews,
exclusions, outcomes, counters (times are naive UTC).

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 13:21:02.287350
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('chains', sa.JSON(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_prefix'), ['prefix'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('key_prefix', sa.String(length=16), nullable=True),
    sa.Column('role', sa.String(length=20), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=400), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('counters',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('exclusions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=False),
    sa.Column('enterprise_id', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('gap_id', 'enterprise_id')
    )
    with op.batch_alter_table('exclusions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exclusions_gap_id'), ['gap_id'], unique=False)

    op.create_table('outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.String(length=200), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('previous_stage', sa.String(length=20), nullable=True),
    sa.Column('date', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('recorded_by', sa.String(length=250), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outcomes_enterprise_id'), ['enterprise_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outcomes_gap_id'), ['gap_id'], unique=False)

    op.create_table('ranked_lists',
    sa.Column('list_version', sa.String(length=64), nullable=False),
    sa.Column('artifact_version', sa.String(length=100), nullable=False),
    sa.Column('ranker', sa.String(length=200), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=True),
    sa.Column('query_text', sa.Text(), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('excluded', sa.JSON(), nullable=False),
    sa.Column('feature_names', sa.JSON(), nullable=False),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('list_version')
    )
    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ranked_lists_artifact_version'), ['artifact_version'], unique=False)
        batch_op.create_index(batch_op.f('ix_ranked_lists_gap_id'), ['gap_id'], unique=False)

    op.create_table('served_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_version', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('route', sa.String(length=100), nullable=False),
    sa.Column('offset', sa.Integer(), nullable=False),
    sa.Column('top', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['list_version'], ['ranked_lists.list_version'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('served_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_served_lists_list_version'), ['list_version'], unique=False)

    op.create_table('shortlists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=False),
    sa.Column('chain_id', sa.String(length=100), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('top', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_by_key_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('data_version', sa.String(length=100), nullable=False),
    sa.Column('model_version', sa.String(length=200), nullable=False),
    sa.Column('snapshot_id', sa.String(length=100), nullable=False),
    sa.Column('list_version', sa.String(length=64), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['list_version'], ['ranked_lists.list_version'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shortlists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shortlists_chain_id'), ['chain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shortlists_gap_id'), ['gap_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shortlists_status'), ['status'], unique=False)

    op.create_table('shortlist_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shortlist_id', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('enterprise_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('score', sa.Double(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('explanation_en', sa.JSON(), nullable=False),
    sa.Column('explanation_zh', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=200), nullable=False),
    sa.Column('data_version', sa.String(length=100), nullable=False),
    sa.Column('snapshot_id', sa.String(length=100), nullable=False),
    sa.Column('list_version', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason_code', sa.String(length=40), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(), nullable=True),
    sa.Column('reviewed_by', sa.String(length=250), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['list_version'], ['ranked_lists.list_version'], ),
    sa.ForeignKeyConstraint(['shortlist_id'], ['shortlists.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shortlist_id', 'enterprise_id')
    )
    with op.batch_alter_table('shortlist_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shortlist_items_shortlist_id'), ['shortlist_id'], unique=False)

    op.create_table('reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('shortlist_id', sa.Integer(), nullable=False),
    sa.Column('gap_id', sa.String(length=200), nullable=False),
    sa.Column('enterprise_id', sa.String(length=200), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=False),
    sa.Column('reason_code', sa.String(length=40), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=True),
    sa.Column('reviewer', sa.String(length=250), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('item_version', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['item_id'], ['shortlist_items.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reviews_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviews_shortlist_id'), ['shortlist_id'], unique=False)
    op.bulk_insert(sa.table('counters', sa.column('name', sa.String), sa.column('value', sa.BigInteger)),
                   [{'name': 'exclusions', 'value': 0}, {'name': 'outcomes', 'value': 0}])


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviews_shortlist_id'))
        batch_op.drop_index(batch_op.f('ix_reviews_item_id'))

    op.drop_table('reviews')
    with op.batch_alter_table('shortlist_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shortlist_items_shortlist_id'))

    op.drop_table('shortlist_items')
    with op.batch_alter_table('shortlists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shortlists_status'))
        batch_op.drop_index(batch_op.f('ix_shortlists_gap_id'))
        batch_op.drop_index(batch_op.f('ix_shortlists_chain_id'))

    op.drop_table('shortlists')
    with op.batch_alter_table('served_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_served_lists_list_version'))

    op.drop_table('served_lists')
    with op.batch_alter_table('ranked_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ranked_lists_gap_id'))
        batch_op.drop_index(batch_op.f('ix_ranked_lists_artifact_version'))

    op.drop_table('ranked_lists')
    with op.batch_alter_table('outcomes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outcomes_gap_id'))
        batch_op.drop_index(batch_op.f('ix_outcomes_enterprise_id'))

    op.drop_table('outcomes')
    with op.batch_alter_table('exclusions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exclusions_gap_id'))

    op.drop_table('exclusions')
    op.drop_table('counters')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_prefix'))

    op.drop_table('api_keys')
