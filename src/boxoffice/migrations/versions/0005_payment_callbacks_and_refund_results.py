"""payments: callback token hashes, instructions, refund results

Callback tokens are now derived from the deployment secret and stored hashed; a pending
payment of an earlier version keeps working through reconciliation (its callbacks 404).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 20:15:54.591478
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("instructions", sa.String(length=300), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_payments_callback_token"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_callback_token_hash"), ["callback_token_hash"]
        )
        batch_op.drop_column("callback_token")

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failure_reason", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("callback_token_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_refunds_callback_token_hash"), ["callback_token_hash"]
        )


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_refunds_callback_token_hash"), type_="unique")
        batch_op.drop_column("callback_token_hash")
        batch_op.drop_column("failure_reason")

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_token", sa.VARCHAR(length=64), nullable=True))
        batch_op.drop_constraint(batch_op.f("uq_payments_callback_token_hash"), type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_payments_callback_token"), ["callback_token"]
        )
        batch_op.drop_column("instructions")
        batch_op.drop_column("callback_token_hash")
