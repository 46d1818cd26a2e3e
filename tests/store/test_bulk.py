"""Values the bulk writers hand the driver are what SQLAlchemy itself would store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from consentgate.store.bulk import bind
from consentgate.store.driver import dialect
from consentgate.store.models import ConsentEvent, DecisionRecord

instants = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30),
                        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5)),
                                                   timezone(timedelta(hours=5, minutes=30))]))


@given(instants)
def test_sqlite_times_are_spelled_as_sqlalchemy_spells_them(value: datetime) -> None:
    # Times are text on SQLite and compared as text: one instant, one spelling.
    sqlite = dialect("sqlite")
    column = ConsentEvent.__table__.c.captured_at  # type: ignore[attr-defined]
    stored_by_sqlalchemy = column.type.dialect_impl(sqlite).bind_processor(sqlite)(value)
    assert bind(sqlite, ConsentEvent.__table__, "captured_at")(value) == stored_by_sqlalchemy  # type: ignore[arg-type]


@given(instants, instants)
def test_sqlite_time_text_sorts_as_the_instants_do(a: datetime, b: datetime) -> None:
    to_text = bind(dialect("sqlite"), DecisionRecord.__table__, "decided_at")  # type: ignore[arg-type]
    assert (to_text(a) < to_text(b)) == (a < b)
    assert (to_text(a) == to_text(b)) == (a == b)


def test_postgresql_gets_times_with_their_offset_and_json_as_text() -> None:
    pg = dialect("postgresql")
    at = datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert bind(pg, DecisionRecord.__table__, "decided_at")(at) == "2026-11-27T17:00:00+00:00"  # type: ignore[arg-type]
    as_text = bind(pg, DecisionRecord.__table__, "reasons")([{"code": "X", "note": "für"}])  # type: ignore[arg-type]
    assert isinstance(as_text, str) and json.loads(as_text) == [{"code": "X", "note": "für"}]
