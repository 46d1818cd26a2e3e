"""``consentgate erase``: the right to erasure from the command line."""

from __future__ import annotations

import json

import click

from consentgate.services.erasure import erase_identity
from consentgate.services.identities import AddressRef
from consentgate.services.keys import Actor
from consentgate.store.models import MAX_ID


def register(cli: click.Group) -> None:
    cli.add_command(erase)


@click.command()
@click.option("--email", default=None)
@click.option("--phone", default=None)
@click.option("--identity-id", type=click.IntRange(1, MAX_ID), default=None)
@click.option("--law", default="GDPR Art. 17", show_default=True, help="the law the request is made under")
@click.option("--reason", default=None)
@click.option("--requested-by", default="operator", show_default=True)
def erase(email: str | None, phone: str | None, identity_id: int | None, law: str,
          reason: str | None, requested_by: str) -> None:
    """Erase a person; opted-out addresses stay blocked through keyed-hash tombstones."""
    from consentgate.cli.base import open_runtime

    rt = open_runtime()
    target: AddressRef | int = (
        identity_id if identity_id is not None else AddressRef(email=email, phone=phone)
    )
    result = erase_identity(rt.store, rt.policy, rt.secret_key, target, law=law, reason=reason,
                            actor=Actor(None, requested_by, "admin"), now=rt.clock())
    click.echo(json.dumps({"erasure_id": result.erasure_id, "identity_id": result.identity_id,
                           "contact_points": result.contact_points, "tombstones": result.tombstones}))
