"""merge_move: which contact points and touches a merge moved, and from whom

A merge moves the absorbed person's contact points and touches to the survivor. A replay of a
decision made before the merge must read the person as they stood apart; this table says who
had each moved row until the merge. Merges made before this revision left no such record.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merge_move",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("merge_event_id", sa.Integer(), sa.ForeignKey("merge_event.id"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("from_identity_id", sa.Integer(), nullable=False),
    )
    op.create_index("ix_merge_move_merge_event_id", "merge_move", ["merge_event_id"])


def downgrade() -> None:
    op.drop_index("ix_merge_move_merge_event_id", table_name="merge_move")
    op.drop_table("merge_move")
