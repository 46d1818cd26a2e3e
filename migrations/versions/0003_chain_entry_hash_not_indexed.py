"""chain_entry.entry_hash loses its unique index

Nothing looks a chain entry up by its hash, and the chain cannot fork without two entries
claiming one ``seq`` (the primary key): the index only made every ledger write insert a random
64-character key into a B-tree as large as the ledger.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 09:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import consentgate.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _chain_entry(*extra: sa.schema.SchemaItem) -> sa.Table:
    """chain_entry as 0001 made it, without the unique entry_hash (SQLite rebuilds the table from it)."""
    return sa.Table(
        "chain_entry", sa.MetaData(),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("table_name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("row_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("entry_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", consentgate.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("table_name", "row_id", name="uq_chain_row"),
        *extra,
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("chain_entry_entry_hash_key", "chain_entry", type_="unique")
        return
    # SQLite cannot drop the unnamed constraint: the table is rebuilt without it.
    with op.batch_alter_table("chain_entry", recreate="always", copy_from=_chain_entry()):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("chain_entry_entry_hash_key", "chain_entry", ["entry_hash"])
        return
    with op.batch_alter_table("chain_entry", recreate="always",
                              copy_from=_chain_entry(sa.UniqueConstraint("entry_hash"))):
        pass
