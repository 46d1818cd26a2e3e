"""Alembic, driven from code: ``consentgate db upgrade`` and the check behind /readyz."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from consentgate.store.db import Store


def migrations_dir() -> Path:
    """The migrations folder: the working directory's, else the one beside the package."""
    for candidate in (Path.cwd() / "migrations", Path(__file__).resolve().parents[2] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("no migrations/ folder beside the working directory or the package")


def alembic_config(store: Store) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", store.url.replace("%", "%%"))
    return config


def upgrade(store: Store, revision: str = "head") -> None:
    """Migrate the store to ``revision`` (head by default)."""
    config = alembic_config(store)
    # Alembic owns the transactions (one per migration, see env.py): an index built concurrently
    # on PostgreSQL must run outside any.
    with store.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision(store: Store) -> str | None:
    return ScriptDirectory.from_config(alembic_config(store)).get_current_head()


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_current(store: Store) -> bool:
    """True when the store's schema is at the newest migration."""
    return current_revision(store) == head_revision(store)
