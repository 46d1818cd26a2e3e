"""erasure_event chains its tombstones: their digest and when they expire

Tombstones were not chained: one removed or narrowed in the database made an erased person's
address contactable again with the chain still verifying. An erasure written from now on (chain
scheme 2) covers the digest of the tombstones it left and the instant they expire, and
verification checks them until then. Erasures already chained keep scheme 1.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from consentgate.store.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("erasure_event") as batch:
        batch.add_column(sa.Column("tombstones_digest", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("tombstones_expire_at", UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("chain_scheme", sa.Integer(), nullable=False, server_default=sa.text("1")))


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT 1 FROM erasure_event WHERE chain_scheme > 1 LIMIT 1")).first():
        raise RuntimeError("erasures chained with scheme 2 exist; a release before 0011 cannot verify them")
    with op.batch_alter_table("erasure_event") as batch:
        batch.drop_column("chain_scheme")
        batch.drop_column("tombstones_expire_at")
        batch.drop_column("tombstones_digest")
