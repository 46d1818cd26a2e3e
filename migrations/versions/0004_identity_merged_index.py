"""identity gets a partial index of the people merged into someone else

A batch of eligibility checks must notice a merge landing while it reads. It used to read the
row of every one of its people twice for that (on PostgreSQL most of them pages from outside the
buffer cache); probing an index of only the merged-away people answers the same question.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MERGED = sa.text("merged_into_id IS NOT NULL")


def upgrade() -> None:
    op.create_index("ix_identity_merged", "identity", ["id"], postgresql_where=_MERGED, sqlite_where=_MERGED)


def downgrade() -> None:
    op.drop_index("ix_identity_merged", table_name="identity")
