"""Streaming encoders: rows out as they come, so a report of 5 million rows needs no more
memory than one of 10.

CSV is RFC 4180 (``\\r\\n``, a header row, quoting by the csv module) and safe to open in a
spreadsheet: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is prefixed with ``'`` (OWASP's advice on CSV injection), so no cell is ever run as a formula.
Numbers are written as numbers and are never touched.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from consentgate.core.timefmt import iso_z

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FLUSH_ROWS = 500


def cell(value: Any) -> Any:
    """One CSV cell: instants in UTC with Z, lists joined by ``|``, text made formula-safe."""
    kind = type(value)
    if value is None:
        return ""
    if kind is str:
        return "'" + value if value.startswith(FORMULA_STARTS) else value
    if kind is int:
        return value
    if kind is datetime and value.tzinfo is UTC:
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z") if value.tzinfo is UTC else iso_z(value)
    if isinstance(value, list | tuple):
        value = "|".join(str(cell(v)) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, default=str)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_stream(header: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """Rows as mappings, written in ``header`` order."""
    values = itemgetter(*header) if len(header) > 1 else (lambda row: (row[header[0]],))
    return csv_tuples(header, map(values, rows))


def csv_tuples(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Rows as sequences already in ``header`` order (database rows as they come)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(header)
    yield take()
    pending = 0
    for row in rows:
        writer.writerow([cell(v) for v in row])
        pending += 1
        if pending == FLUSH_ROWS:    # a few hundred rows per chunk: fewer, larger writes to the socket
            yield take()
            pending = 0
    if pending:
        yield take()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    return str(value)


def _dumps(row: Mapping[str, Any]) -> str:
    return json.dumps(row, default=_json_default, separators=(",", ":"))


def jsonl_stream(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    batch: list[str] = []
    for row in rows:
        batch.append(_dumps(row) + "\n")
        if len(batch) == FLUSH_ROWS:
            yield "".join(batch)
            batch.clear()
    if batch:
        yield "".join(batch)


def json_array_stream(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    yield "["
    first = True
    for row in rows:
        yield ("" if first else ",\n") + _dumps(row)
        first = False
    yield "]\n"
