"""The streaming encoders: RFC 4180 CSV that no spreadsheet runs as a formula, incremental JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from consentgate.reports.streaming import cell, csv_stream, json_array_stream, jsonl_stream


def test_cells() -> None:
    assert cell("=1+1") == "'=1+1" and cell("@SUM(A1)") == "'@SUM(A1)" and cell("-2+3") == "'-2+3"
    assert cell(-3) == -3 and cell(None) == "" and cell(True) == "true"
    assert cell(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert cell(["sms", "voice"]) == "sms|voice"


@given(st.lists(st.text(), min_size=1, max_size=5))
def test_csv_round_trips_and_is_never_a_formula(values: list[str]) -> None:
    text = "".join(csv_stream(["a"], ({"a": v} for v in values)))
    parsed = [row[0] for row in csv.reader(io.StringIO(text, newline=""))]
    assert parsed[0] == "a"
    for original, read in zip(values, parsed[1:], strict=True):
        assert not read.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert read == original or read == "'" + original


def test_json_streams() -> None:
    rows = [{"a": 1}, {"a": datetime(2026, 1, 1, tzinfo=UTC)}]
    assert json.loads("".join(json_array_stream(iter(rows)))) == [{"a": 1}, {"a": "2026-01-01T00:00:00Z"}]
    assert json.loads("".join(json_array_stream(iter([])))) == []
    assert len("".join(jsonl_stream(iter(rows))).splitlines()) == 2
