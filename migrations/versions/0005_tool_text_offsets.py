"""Tool calls in history: where each call sits in the answer's text (the characters of the answer
sent before it), so history can draw it between the sentence before it and the one after.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tool_invocations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text_offset', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tool_invocations', schema=None) as batch_op:
        batch_op.drop_column('text_offset')
