"""what erasing a person must find without reading whole tables

decision.address_hash: a decision about an address that belonged to nobody names that address in its request and has no
identity. When the person who later has that address is erased, those decisions must lose it
too; finding them by their request would read the whole decision log. They now carry a keyed
hash of the address (the one erasure tombstones use), behind a partial index of those rows only.
Decisions logged before this revision have no hash: erasure cannot find them that way.

inbound_message.from_number gets an index: every SMS a person sent (a HELP, a START, words the
gate did not understand) is found by their numbers when they are erased.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("decision", sa.Column("address_hash", sa.String(length=64), nullable=True))
    _create_index("ix_decision_unknown_address", "decision", ["address_hash"],
                  postgresql_where=sa.text("address_hash IS NOT NULL"), sqlite_where=sa.text("address_hash IS NOT NULL"))
    _create_index("ix_inbound_message_from", "inbound_message", ["from_number"])


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
    op.drop_index("ix_inbound_message_from", table_name="inbound_message")
    op.drop_index("ix_decision_unknown_address", table_name="decision")
    with op.batch_alter_table("decision") as batch:
        batch.drop_column("address_hash")
