"""touch.released_at: when a reservation gave its slot back

A replay reads a person's touches as they stood at the decision's instant. Without the time of
a release it had to take every released reservation as still held then (while its time to live
ran), and replayed a check allowed after a release as denied by the cap.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28 06:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from consentgate.store.types import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Releases made before this revision keep no time: replay reads them as before.
    with op.batch_alter_table("touch") as batch:
        batch.add_column(sa.Column("released_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("touch") as batch:
        batch.drop_column("released_at")
