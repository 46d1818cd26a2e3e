"""The ``consentgate`` command: serve, db, keys, import, policy, audit, scheduler and more.

Each group of commands lives in its own module and calls the same services as the HTTP API.
"""

from __future__ import annotations

import sys
from importlib import import_module

import click

from consentgate.errors import ConsentgateError

COMMAND_MODULES = (
    "consentgate.cli.base",
    "consentgate.cli.imports",
    "consentgate.cli.scheduler",
    "consentgate.cli.erase",
    "consentgate.cli.auditor",
    "consentgate.cli.qa",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="consentgate")
def cli() -> None:
    """consentgate: may I contact this person on this channel now, for this purpose?"""


for _name in COMMAND_MODULES:
    import_module(_name).register(cli)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConsentgateError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
