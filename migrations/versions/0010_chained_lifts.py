"""opt-outs lifted before lifts were chained get their chain entries

A START lifting an opt-out is now chained as an entry of its own ("revocation_lift"), and
verification names any lifted opt-out without one: a lift made in the database directly would
otherwise re-enable contact with the chain still verifying. Lifts recorded before this release
are chained here, in the order they were made.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 00:50:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from consentgate.store import chain
from consentgate.store.models import Revocation

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    connection = op.get_bind()
    table = Revocation.__table__  # type: ignore[attr-defined]
    entries = sa.table("chain_entry", sa.column("table_name"), sa.column("row_id"))
    chained = sa.select(entries.c.row_id).where(entries.c.table_name == "revocation_lift")
    lifted = connection.execute(
        sa.select(table.c.id, table.c.lifted_at, table.c.lifted_by_message_id)
        .where(table.c.lifted_at.is_not(None), table.c.id.not_in(chained))
        .order_by(table.c.lifted_at, table.c.id)).mappings().all()
    chain.append_hashes(connection, "revocation_lift",
                        [(row["id"], chain.amendment_hash("revocation_lift", row)) for row in lifted],
                        datetime.now(UTC))


def downgrade() -> None:
    # The entries stay: removing them would break the chain they are part of.
    pass
