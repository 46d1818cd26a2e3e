"""serve, db upgrade, keys, policy check, audit verify."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import click

from consentgate.config import load_settings
from consentgate.core.policy import load_policy
from consentgate.runtime import Runtime, build_runtime, tune_gc, utc_now
from consentgate.services import keys as key_service
from consentgate.store.db import Store, dispose_all


def open_runtime(migrate: bool | None = None) -> Runtime:
    """The runtime a command works on, from the same settings the server uses."""
    runtime = build_runtime(load_settings(), migrate=migrate)
    tune_gc()
    return runtime


def register(cli: click.Group) -> None:
    cli.add_command(serve)
    cli.add_command(db)
    cli.add_command(keys)
    cli.add_command(policy)
    cli.add_command(audit)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=0, type=int,
              help="serve with gunicorn and this many sync workers (0: the development server)")
def serve(host: str, port: int, workers: int) -> None:
    """Serve the API (migrating the embedded SQLite store on first start)."""
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if workers <= 0:
        from consentgate.app import create_app

        create_app().run(host=host, port=port, threaded=True)
        return
    build_runtime(settings)  # migrate once, before the workers fork
    # Pooled connections must not cross the fork: two processes on one socket corrupt both.
    dispose_all()
    _gunicorn(host, port, workers)


def _gunicorn(host: str, port: int, workers: int) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", "sync")
            self.cfg.set("timeout", 60)
            self.cfg.set("accesslog", os.environ.get("CONSENTGATE_ACCESS_LOG") or None)

        def load(self) -> Any:
            from consentgate.app import create_app

            return create_app({"auto_migrate": False})

    Server().run()


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the store to the newest schema."""
    from consentgate.store.migrate import current_revision, upgrade

    store = Store(load_settings().database_url)
    upgrade(store)
    click.echo(f"store at revision {current_revision(store)}")


@db.command("hash-decisions")
def db_hash_decisions() -> None:
    """Once after upgrading to 0006: let erasure find older decisions about then-unknown addresses."""
    from consentgate.services.erasure import hash_unknown_decisions

    rt = open_runtime()
    click.echo(f"{hash_unknown_decisions(rt.store, rt.secret_key)} decisions about then-unknown addresses hashed")


@click.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(key_service.ROLES))
@click.option("--name", default="", help="who or what uses the key")
def keys_create(role: str, name: str) -> None:
    """Mint a key; its clear text is printed once, alone on the last line."""
    if len(name) > key_service.MAX_NAME:
        raise click.BadParameter(f"is longer than {key_service.MAX_NAME} characters", param_hint="--name")
    rt = open_runtime()
    key, token = key_service.create_key(rt.store, role, name, utc_now())
    click.echo(f"created key {key.id} ({key.role}, {key.name}); store it now, it is not shown again:",
               err=True)
    click.echo(token)


@keys.command("list")
def keys_list() -> None:
    """List keys (never their clear text)."""
    rt = open_runtime()
    for key in key_service.list_keys(rt.store):
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        click.echo(f"{key.id}\t{key.prefix}…\t{key.role}\t{key.name}\t{state}")


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by id or prefix."""
    rt = open_runtime()
    revoked = key_service.revoke_key(rt.store, key, utc_now())
    click.echo(f"revoked key {revoked.id} ({revoked.prefix}…)")


@click.group()
def policy() -> None:
    """Policies."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Validate a policy file without serving; print its version."""
    loaded = load_policy(file)
    click.echo(f"{file}: ok, policy {loaded.policy.name!r} version {loaded.version}")


@click.group()
def audit() -> None:
    """Tamper evidence."""


@audit.command("verify")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="processes checking ranges of the chain at once (default: one per core)")
def audit_verify(workers: int | None) -> None:
    """Recompute the ledger's hash chain; exit 1 at the first broken link."""
    from consentgate.services.verification import verify_chain

    rt = open_runtime()
    result = verify_chain(rt.store, rt.clock(), workers)
    click.echo(json.dumps({"ok": result.ok, "checked": result.checked,
                           "first_broken": result.first_broken}))
    if not result.ok:
        raise SystemExit(1)
