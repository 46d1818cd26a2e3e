"""indexes for the scheduler's jobs, which read small parts of tables that grow with every send

The re-permission job asked, for every re-permission touch ever sent, whether a revocation already
closed it, scanning the revocation table each time: with 2,000 such touches on record it took
28 s an hour, holding SQLite's write lock (every check waiting to log its decision waited). The
reservation job updated open reservations by scanning every touch each minute, and the consent
expiry report scanned the whole consent ledger each hour.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _partial(condition: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(condition), "sqlite_where": sa.text(condition)}


def upgrade() -> None:
    op.create_index("ix_revocation_attributed_touch", "revocation", ["attributed_touch_id"],
                    **_partial("attributed_touch_id IS NOT NULL"))
    op.create_index("ix_touch_purpose_at", "touch", ["purpose", "at"])
    op.create_index("ix_touch_reserved", "touch", ["expires_at"], **_partial("state = 'reserved'"))
    op.create_index("ix_consent_event_expires", "consent_event", ["expires_at"], **_partial("expires_at IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_consent_event_expires", table_name="consent_event")
    op.drop_index("ix_touch_reserved", table_name="touch")
    op.drop_index("ix_touch_purpose_at", table_name="touch")
    op.drop_index("ix_revocation_attributed_touch", table_name="revocation")
