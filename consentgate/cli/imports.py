"""``consentgate import consents|suppressions|dnc FILE``: streamed CSV imports.

Exit codes: 0 when every row was imported, 2 when some rows were rejected (each reported with
its line number and field, on stderr or in ``--errors FILE``), 1 when the file cannot be used.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click

from consentgate.errors import ConsentgateError
from consentgate.services.bulk_consents import MISALIGNED
from consentgate.services.imports import (
    Rejected,
    import_consents,
    import_dnc,
    import_suppressions,
)


def register(cli: click.Group) -> None:
    cli.add_command(import_)


@click.group("import")
def import_() -> None:
    """Import consents, suppressions or the National DNC Registry from files.

    \b
    Exit codes: 0 every row imported; 2 some rows rejected (the others are
    imported); 1 the file cannot be used (missing, unreadable, header lacks columns).
    """


@contextmanager
def _fatal(path: Path) -> Iterator[None]:
    """Errors that concern the whole file (or the setup) exit 1, leaving 2 to mean "some rows rejected"."""
    try:
        yield
    except ConsentgateError as exc:
        raise click.ClickException(f"{path}: {exc.detail}") from None


def _open(path: Path) -> IO[str]:
    try:
        # Undecodable bytes are kept as surrogates so that the import can name their line.
        return path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot be read ({exc.strerror})") from None


def _report(read: int, imported: int, rejected: list[Rejected], errors: Path | None, noun: str) -> None:
    if errors is not None:
        _write_rejects(errors, rejected)
    else:
        for r in rejected:
            click.echo(f"line {r.line}: {r.field + ': ' if r.field else ''}{r.message}", err=True)
    # One row may break several rules: the summary counts rows, the report lists every rule.
    click.echo(f"{read} rows read, {imported} {noun}, {len({r.line for r in rejected})} rejected")
    if rejected:
        sys.exit(2)


def _write_rejects(path: Path, rejected: list[Rejected]) -> None:
    """line, field, message, then the row's own columns, so a fixed copy can be imported again."""
    columns = list(dict.fromkeys(k for r in rejected for k in r.row if k != MISALIGNED))
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "field", "message", *columns])
        for r in rejected:
            writer.writerow([r.line, r.field, r.message, *(r.row.get(c, "") for c in columns)])


def _progress(unit: str) -> Any:
    """A progress bar on a terminal; nothing when output goes to a file or a pipe."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(unit=f" {unit}", file=sys.stderr)


_errors_option = click.option("--errors", "errors", type=click.Path(dir_okay=False, path_type=Path), default=None,
                              help="write rejected rows to this CSV instead of stderr")
_dry_run_option = click.option("--dry-run", is_flag=True, help="validate every row, write nothing")


@import_.command("consents")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_errors_option
@_dry_run_option
def consents(file: Path, errors: Path | None, dry_run: bool) -> None:
    """Consent events (columns of POST /v1/consents, plus external_id, company_domain, timezone, state, ...)."""
    from consentgate.cli.base import open_runtime

    with _fatal(file):
        rt = open_runtime()
        bar = _progress("rows")
        try:
            with _open(file) as stream:
                result = import_consents(rt.store, rt.policy, stream, rt.clock(), dry_run=dry_run,
                                         progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
    _report(result.read, result.imported, result.rejected, errors, "valid" if dry_run else "imported")


@import_.command("suppressions")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_errors_option
@_dry_run_option
def suppressions(file: Path, errors: Path | None, dry_run: bool) -> None:
    """Suppressions (columns email, phone, kind, since, note)."""
    from consentgate.cli.base import open_runtime

    with _fatal(file):
        rt = open_runtime()
        with _open(file) as stream:
            result = import_suppressions(rt.store, rt.policy, stream, rt.clock(), dry_run=dry_run)
    _report(result.read, result.imported, result.rejected, errors, "valid" if dry_run else "imported")


@import_.command("dnc")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--snapshot-date", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="the registry download's date (default: today, UTC)")
@click.option("--replace", is_flag=True,
              help="numbers not in this snapshot (this file, or another loaded with the same --snapshot-date) "
                   "are marked removed from the registry")
@_errors_option
def dnc(file: Path, snapshot_date: datetime | None, replace: bool, errors: Path | None) -> None:
    """The National DNC Registry download: one number per line (10 digits, or area code,number)."""
    from consentgate.cli.base import open_runtime

    with _fatal(file):
        rt = open_runtime()
        now = rt.clock()
        snapshot = snapshot_date.date() if snapshot_date is not None else now.date()
        bar = _progress("numbers")
        try:
            with _open(file) as stream:
                result = import_dnc(rt.store, rt.policy, stream, now, snapshot, replace=replace,
                                    progress=bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
    if replace or result.removed:
        click.echo(f"{result.removed} numbers no longer listed")
    _report(result.read, result.loaded, result.rejected, errors, "listed")
