"""consent_event.contact_point_id may be empty: consent on a channel that reaches the person

Postal mail and LinkedIn have no address of their own (a policy channel with ``address: none``):
consent to them is the person's, not one of their contact points', and its event names no
contact point.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # On SQLite a copy of the table: SQLite cannot drop a NOT NULL in place.
    with op.batch_alter_table("consent_event") as batch:
        batch.alter_column("contact_point_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT 1 FROM consent_event WHERE contact_point_id IS NULL LIMIT 1")).first():
        raise RuntimeError("consents on channels without an address exist; a release before 0012 cannot hold them")
    with op.batch_alter_table("consent_event") as batch:
        batch.alter_column("contact_point_id", existing_type=sa.Integer(), nullable=False)
