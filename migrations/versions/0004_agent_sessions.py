"""Agent sessions: a turn's agent loop saved step by step (Strands' RepositorySessionManager), so a
retried attempt continues from the last completed step.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'agent_session_records',
        sa.Column('turn_id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('agent_id', sa.String(length=128), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.ForeignKeyConstraint(
            ['turn_id'], ['turns.id'], name=op.f('fk_agent_session_records_turn_id_turns'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('turn_id', 'kind', 'agent_id', 'message_id', name=op.f('pk_agent_session_records')),
    )


def downgrade() -> None:
    op.drop_table('agent_session_records')
