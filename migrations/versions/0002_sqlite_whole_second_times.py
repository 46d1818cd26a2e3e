"""SQLite: times written by the bulk writers carry microseconds like every other time

Bulk imports and the batch decision log stored whole-second times on SQLite as
``YYYY-MM-DD HH:MM:SS``, where SQLAlchemy stores ``YYYY-MM-DD HH:MM:SS.000000``. Times are kept
as text there and compared as text, so the shorter form sorted before the same instant written
the other way. This pads them; PostgreSQL keeps real timestamps and has nothing to change.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            if isinstance(column["type"], sa.DateTime):
                name = column["name"]
                op.execute(sa.text(f'UPDATE "{table}" SET "{name}" = "{name}" || \'.000000\' '
                                   f'WHERE length("{name}") = 19'))


def downgrade() -> None:
    # The padded form is what SQLAlchemy itself writes: nothing to undo.
    pass
