"""Placeholder command group: its commands arrive with their capability."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add this module's commands to the ``consentgate`` group."""
