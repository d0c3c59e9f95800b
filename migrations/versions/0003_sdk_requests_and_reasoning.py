"""AI SDK requests and reasoning: a listener may be one request of the AI SDK's WebSocket chat
transport (its `requestId`), and a turn stores the model's reasoning beside its answer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('turn_listeners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.String(length=128), nullable=True))
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reasoning_text', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('turns', schema=None) as batch_op:
        batch_op.drop_column('reasoning_text')
    with op.batch_alter_table('turn_listeners', schema=None) as batch_op:
        batch_op.drop_column('request_id')
