"""identity: no index on account_domain, and merged_into_id indexed only where it is set

Nothing looks people up by their company (account-scoped revocations and touches carry the
domain themselves), and only merged-away people have a merged_into_id; yet every new person
was written into both indexes, most of them as NULL entries. An import creates people by the
hundred thousand: the two entries cost about a quarter of writing a person on SQLite.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 23:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MERGED = sa.text("merged_into_id IS NOT NULL")


def upgrade() -> None:
    # The partial index is built before the full one goes, so a merge always has one to use.
    _create_index("ix_identity_merged_into", "identity", ["merged_into_id"], postgresql_where=_MERGED,
                  sqlite_where=_MERGED)
    _drop_index("ix_identity_merged_into_id", "identity")
    _drop_index("ix_identity_account_domain", "identity")


def _create_index(name: str, table: str, columns: list[str], **where: sa.TextClause) -> None:
    """On PostgreSQL CONCURRENTLY, outside the migration's transaction: the gate keeps writing
    people while the new release is being rolled out (as 0007)."""
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True, **where)
    else:
        op.create_index(name, table, columns, **where)


def _drop_index(name: str, table: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(name, table_name=table)


def downgrade() -> None:
    op.create_index("ix_identity_account_domain", "identity", ["account_domain"])
    op.create_index("ix_identity_merged_into_id", "identity", ["merged_into_id"])
    op.drop_index("ix_identity_merged_into", table_name="identity")
