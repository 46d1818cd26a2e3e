"""idempotency_record.created_at indexed: keys are kept for a while, then purged

Every consent written with an Idempotency-Key left a row for ever. Keys now expire (a retry comes
within minutes or hours, not months), and the purge finds the old ones by this index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_index("ix_idempotency_record_created_at", "idempotency_record", ["created_at"])


def _create_index(name: str, table: str, columns: list[str], **where: sa.TextClause) -> None:
    """On PostgreSQL the index is built CONCURRENTLY, outside the migration's transaction: a plain
    build would hold the table against writes for as long as it reads the whole table, and the
    gate writes to it with every check while the new release is being rolled out."""
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(name, table, columns, postgresql_concurrently=True, if_not_exists=True, **where)
    else:
        op.create_index(name, table, columns, **where)


def downgrade() -> None:
    op.drop_index("ix_idempotency_record_created_at", table_name="idempotency_record")
