"""GET /v1/reports/*: streamed CSV, JSON or JSON Lines for auditors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any, Literal

from flask import Blueprint, Response, stream_with_context
from pydantic import ConfigDict

from consentgate.api.auth import require
from consentgate.api.context import parse_query, runtime
from consentgate.api.openapi import documented
from consentgate.reports import queries
from consentgate.reports.streaming import csv_stream, json_array_stream, jsonl_stream
from consentgate.services.schemas import Instant, Request
from consentgate.store.db import Store

bp = Blueprint("reports", __name__)

Format = Literal["csv", "json", "jsonl"]
_MEDIA = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}


class ReportQuery(Request):
    model_config = ConfigDict(extra="forbid")
    since: Instant | None = None
    until: Instant | None = None
    format: Format = "json"


class ConsentQuery(ReportQuery):
    channel: str | None = None
    purpose: str | None = None
    brand: str | None = None
    source: str | None = None


class RevocationQuery(ReportQuery):
    sla_status: Literal["met", "pending", "at_risk", "missed"] | None = None


class DecisionQuery(ReportQuery):
    allowed: bool | None = None
    code: str | None = None


class OptoutQuery(ReportQuery):
    group_by: queries.GroupBy = "campaign"


def _respond(name: str, fmt: Format, columns: list[str], rows: Callable[[Any], Iterator[dict[str, Any]]],
             store: Store, csv_body: Callable[[Any], Iterator[str]] | None = None) -> Response:
    def generate() -> Iterator[str]:
        # The read transaction lives as long as the stream: the cursor is read while the client downloads.
        with store.transaction(write=False) as session:
            if fmt == "csv" and csv_body is not None:
                yield from csv_body(session)
                return
            found = rows(session)
            if fmt == "csv":
                yield from csv_stream(columns, found)
            elif fmt == "jsonl":
                yield from jsonl_stream(found)
            else:
                yield from json_array_stream(found)

    response = Response(stream_with_context(generate()), mimetype=_MEDIA[fmt])
    if fmt == "csv":
        response.headers["Content-Disposition"] = f'attachment; filename="{name}-{date.today().isoformat()}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/v1/reports/consents")
@require("auditor")
@documented("Every consent event with full provenance (streamed)", tags=["reports"], query=ConsentQuery,
            content_type="text/csv")
def consent_report() -> Response:
    q = parse_query(ConsentQuery)
    filters = q.model_dump(exclude={"format"})
    return _respond("consents", q.format, queries.CONSENT_COLUMNS, lambda s: queries.consents(s, **filters),
                    runtime().report_store, csv_body=lambda s: queries.consents_csv(s, **filters))


@bp.get("/v1/reports/revocations")
@require("auditor")
@documented("Revocations with deadlines, downstream acknowledgements and SLA status (streamed)", tags=["reports"],
            query=RevocationQuery, content_type="text/csv")
def revocation_report() -> Response:
    q = parse_query(RevocationQuery)
    rt = runtime()
    now: datetime = rt.clock()
    return _respond("revocations", q.format, queries.REVOCATION_COLUMNS, lambda s: queries.revocations(
        s, rt.policy, now, since=q.since, until=q.until, sla=q.sla_status), rt.report_store)


@bp.get("/v1/reports/decisions")
@require("auditor")
@documented("The decision log: inputs, outcome, reasons, consent relied on, policy version (streamed)",
            tags=["reports"], query=DecisionQuery, content_type="text/csv")
def decision_report() -> Response:
    q = parse_query(DecisionQuery)
    return _respond("decisions", q.format, queries.DECISION_COLUMNS, lambda s: queries.decisions(
        s, since=q.since, until=q.until, allowed=q.allowed, code=q.code), runtime().report_store)


@bp.get("/v1/reports/optouts")
@require("auditor")
@documented("Opt-out and complaint rates per campaign, segment or channel", tags=["reports"], query=OptoutQuery)
def optout_report() -> Response:
    q = parse_query(OptoutQuery)
    return _respond("optouts", q.format, queries.OPTOUT_COLUMNS, lambda s: queries.optouts(
        s, q.group_by, since=q.since, until=q.until), runtime().report_store)
