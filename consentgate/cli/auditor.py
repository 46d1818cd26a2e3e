"""Evidence for auditors from the command line: decision replay and identity evidence bundles."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TextIO

import click

from consentgate.core.timefmt import as_utc
from consentgate.services.directory import require_identity
from consentgate.services.evidence import identity_evidence
from consentgate.services.replay import replay_decision
from consentgate.store.models import MAX_ID

# A day, or an instant with or without an offset (Z or +HH:MM).
_INSTANTS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


def register(cli: click.Group) -> None:
    cli.add_command(replay)
    cli.add_command(evidence)


@click.command()
@click.argument("decision_id", type=click.IntRange(1, MAX_ID))
def replay(decision_id: int) -> None:
    """Re-run a logged decision on the ledger as it stood then; exit 1 if the answer differs."""
    from consentgate.cli.base import open_runtime

    rt = open_runtime()
    with rt.store.transaction(write=False) as session:
        result = replay_decision(session, rt.secret_key, decision_id, rt.policy)
    click.echo(json.dumps(result, indent=2))
    if not result["same"]:
        raise SystemExit(1)


@click.command()
@click.argument("identity_id", type=click.IntRange(1, MAX_ID))
@click.option("--output", "-o", type=click.File("w"), default="-", help="file to write (default: stdout)")
@click.option("--since", type=click.DateTime(_INSTANTS), default=None,
              help="only the touches and decisions from then on (UTC unless an offset is given)")
@click.option("--until", type=click.DateTime(_INSTANTS), default=None,
              help="only the touches and decisions before then")
def evidence(identity_id: int, output: TextIO, since: datetime | None, until: datetime | None) -> None:
    """Write the evidence bundle of a person: every ledger row behind their decisions, with chain links."""
    from consentgate.cli.base import open_runtime

    rt = open_runtime()
    with rt.store.transaction(write=False) as session:
        bundle = identity_evidence(session, require_identity(session, identity_id), rt.clock(), rt.secret_key,
                                   since=as_utc(since) if since else None, until=as_utc(until) if until else None,
                                   free_mail=rt.policy.free_mail_domains)
    json.dump(bundle, output, indent=2, default=str)
    output.write("\n")
