"""revocation.chain_scheme: a revocation's free-text reason is chained as a personal value

A revocation's reason was part of its chained content, so an erasure could not blank it without
breaking the chain. Revocations written from now on (scheme 2) cover the reason by their salted
digest of personal values, as they cover the raw SMS text, and an erasure blanks it. Rows already
chained keep scheme 1 and are verified as they were written; the column's default gives them 1,
as it does to any row a release from before this migration writes while the new one rolls out.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 00:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("revocation", sa.Column("chain_scheme", sa.Integer(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    # Without the column a revocation of scheme 2 would be verified as scheme 1, and fail.
    if op.get_bind().execute(sa.text("SELECT 1 FROM revocation WHERE chain_scheme > 1 LIMIT 1")).first():
        raise RuntimeError("revocations chained with scheme 2 exist; a release before 0009 cannot verify them")
    with op.batch_alter_table("revocation") as batch:
        batch.drop_column("chain_scheme")
