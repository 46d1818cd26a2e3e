"""Values the bulk writers hand the driver are what SQLAlchemy itself would store."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import IntegrityError

from consentgate.store.bulk import (
    CHECKED_TOGETHER_FROM,
    SQLITE_ROWS_PER_STATEMENT,
    bind,
    driver_connection,
    insert_with_ids,
    listed,
    may_skip_triggers,
)
from consentgate.store.db import Store
from consentgate.store.driver import dialect
from consentgate.store.models import ConsentEvent, ContactPoint, DecisionRecord, Identity
from consentgate.store.subjects import read_contact_points

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


def test_postgresql_gets_times_in_utc_and_json_as_text() -> None:
    pg = dialect("postgresql")
    at = datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=-5)))
    in_utc = bind(pg, DecisionRecord.__table__, "decided_at")(at)  # type: ignore[arg-type]
    assert in_utc == at and in_utc.tzinfo is UTC
    as_text = bind(pg, DecisionRecord.__table__, "reasons")([{"code": "X", "note": "für"}])  # type: ignore[arg-type]
    assert isinstance(as_text, str) and json.loads(as_text) == [{"code": "X", "note": "für"}]


# Texts PostgreSQL can hold (no NUL), with the characters an array literal gives meaning to.
array_texts = (st.text(alphabet=st.sampled_from(list('{},"\\ NULLaé\'\t')), max_size=12)
               | st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                         max_size=12))


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(array_texts, max_size=8) | st.lists(st.integers(-2**31, 2**31 - 1), max_size=8))
def test_a_listed_parameter_reaches_the_database_as_the_values_given(store: Store, values: list[Any]) -> None:
    # A batch sends its keys as one parameter: an array literal on PostgreSQL, JSON on SQLite.
    kind = "text" if any(isinstance(v, str) for v in values) else "integer"
    statement = (f"SELECT %(v)s::{kind}[]" if store.dialect == "postgresql"
                 else "SELECT json_group_array(value) FROM json_each(:v)")
    with store.driver() as driver:
        [(found,)] = driver.raw.execute(statement, {"v": listed(values, store.dialect)}).fetchall()
    assert (found if store.dialect == "postgresql" else json.loads(found)) == values


def test_a_batch_finds_addresses_whatever_characters_they_hold(store: Store) -> None:
    now = datetime.now(UTC)
    values = ['"quoted"@example.com', "a,b@example.com", "{braced}@example.com", "back\\slash@example.com",
              "NULL@example.com", "plain@example.com"]
    with store.transaction() as session:
        identity = Identity(created_at=now, updated_at=now)
        session.add(identity)
        session.flush()
        for value in values:
            session.add(ContactPoint(identity_id=identity.id, kind="email", value=value, created_at=now))
    with store.driver() as driver:
        found = read_contact_points(driver, "email", [*values[:-1], "absent@example.com"])
    assert sorted(cp.value for cp in found) == sorted(values[:-1])


# Texts PostgreSQL can hold, with what COPY's text format escapes (tab, newline, backslash).
cell_texts = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(st.tuples(instants, instants, st.none() | cell_texts, st.booleans(), st.none() | cell_texts),
                min_size=1, max_size=5), instants, st.lists(st.dictionaries(cell_texts, cell_texts, max_size=2)))
def test_bulk_rows_read_back_as_the_values_written(store: Store, people: list[tuple[Any, ...]], decided: datetime,
                                                   reasons: list[Any]) -> None:
    """What the bulk writers insert (COPY on PostgreSQL: binary for plain columns, text where a
    column holds JSON) is what the ORM reads back: instants in UTC, text and flags unchanged."""
    columns = ("created_at", "updated_at", "name", "is_test", "timezone")
    with store.transaction() as session:
        conn = session.connection()
        converters = [bind(conn.dialect, Identity.__table__, name) for name in columns]  # type: ignore[arg-type]
        ids = insert_with_ids(conn, Identity.__table__, columns,  # type: ignore[arg-type]
                              [tuple(convert(v) for convert, v in zip(converters, row, strict=True)) for row in people])
        logged = insert_with_ids(conn, DecisionRecord.__table__,  # type: ignore[arg-type]
                                 ("channel", "purpose", "request", "allowed", "reasons", "codes", "policy_version",
                                  "decided_at", "is_test"),
                                 [("sms", "marketing", bind(conn.dialect, DecisionRecord.__table__, "request")({}),  # type: ignore[arg-type]
                                   False, bind(conn.dialect, DecisionRecord.__table__, "reasons")(reasons),  # type: ignore[arg-type]
                                   "", "v1", bind(conn.dialect, DecisionRecord.__table__, "decided_at")(decided),  # type: ignore[arg-type]
                                   False)])
    with store.transaction(write=False) as session:
        for identity_id, (created, updated, name, is_test, zone) in zip(ids, people, strict=True):
            found = session.get(Identity, identity_id)
            assert found is not None
            assert (found.created_at, found.updated_at) == (created, updated)
            assert (found.name, found.is_test, found.timezone) == (name, is_test, zone)
        record = session.get(DecisionRecord, logged[0])
        assert record is not None and record.decided_at == decided and record.reasons == reasons


def _person(store: Store) -> int:
    now = datetime.now(UTC)
    with store.transaction() as session:
        identity = Identity(created_at=now, updated_at=now)
        session.add(identity)
        session.flush()
        assert identity.id is not None
        return identity.id


def _addresses(conn: Any, owners: list[int], first: int = 0) -> list[tuple[Any, ...]]:
    stamp = bind(conn.dialect, ContactPoint.__table__, "created_at")(datetime.now(UTC))  # type: ignore[arg-type]
    return [(owner, "email", f"p{first + n}@example.com", "active", stamp) for n, owner in enumerate(owners)]


def _count_addresses(store: Store) -> int:
    with store.transaction(write=False) as session:
        return int(session.execute(select(func.count()).select_from(ContactPoint)).scalar_one())


GROUP = SQLITE_ROWS_PER_STATEMENT


@pytest.mark.parametrize("rows", [1, GROUP - 1, GROUP, GROUP + 1, 2 * GROUP + 7])
def test_every_row_of_a_bulk_write_lands_once_under_its_own_id(store: Store, rows: int) -> None:
    # SQLite gets the rows a group at a time in one statement, and the rest one by one.
    person = _person(store)
    with store.transaction() as session:
        conn = session.connection()
        ids = insert_with_ids(conn, ContactPoint.__table__, ("identity_id", "kind", "value", "status", "created_at"),  # type: ignore[arg-type]
                              _addresses(conn, [person] * rows))
    with store.transaction(write=False) as session:
        stored = session.execute(select(ContactPoint.id, ContactPoint.value).order_by(ContactPoint.id)).all()  # type: ignore[arg-type]
    assert [tuple(row) for row in stored] == [(ids[n], f"p{n}@example.com") for n in range(rows)]


def test_a_bulk_write_keeps_within_what_sqlite_lets_one_statement_bind(store: Store) -> None:
    # A SQLite built with a low limit on a statement's parameters still takes the rows, in
    # groups small enough for it.
    if store.dialect != "sqlite":
        pytest.skip("a limit of SQLite's")
    person = _person(store)
    store.engine.dispose()   # a new connection: one that prepared the statements already keeps them
    with store.transaction() as session:
        conn = session.connection()
        raw = driver_connection(conn)
        limit = raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 12)   # two rows of six columns a statement
        try:
            insert_with_ids(conn, ContactPoint.__table__, ("identity_id", "kind", "value", "status", "created_at"),  # type: ignore[arg-type]
                            _addresses(conn, [person] * (GROUP + 1)))
        finally:
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    assert _count_addresses(store) == GROUP + 1


@pytest.mark.parametrize("rows", [1, CHECKED_TOGETHER_FROM - 1, CHECKED_TOGETHER_FROM, 3 * CHECKED_TOGETHER_FROM,
                                  GROUP])
def test_a_bulk_write_naming_a_missing_person_is_refused_and_writes_nothing(store: Store, rows: int) -> None:
    # Small writes are checked by the database's own per-row triggers; large ones on PostgreSQL
    # once per reference column: either way, no address without its person.
    person = _person(store)
    before = _count_addresses(store)
    with pytest.raises(IntegrityError), store.transaction() as session:
        conn = session.connection()
        insert_with_ids(conn, ContactPoint.__table__, ("identity_id", "kind", "value", "status", "created_at"),  # type: ignore[arg-type]
                        _addresses(conn, [person] * (rows - 1) + [person + 1000]))
    assert _count_addresses(store) == before


def test_a_large_bulk_write_leaves_its_transaction_checking_references(store: Store) -> None:
    person = _person(store)
    with pytest.raises(IntegrityError), store.transaction() as session:
        conn = session.connection()
        columns = ("identity_id", "kind", "value", "status", "created_at")
        insert_with_ids(conn, ContactPoint.__table__, columns,  # type: ignore[arg-type]
                        _addresses(conn, [person] * CHECKED_TOGETHER_FROM))
        # One more row on its own, in the same transaction: the database still checks it.
        insert_with_ids(conn, ContactPoint.__table__, columns,  # type: ignore[arg-type]
                        _addresses(conn, [person + 1000], first=CHECKED_TOGETHER_FROM))
    assert _count_addresses(store) == 0


def test_a_large_bulk_write_holds_the_people_it_names_until_it_ends(store: Store) -> None:
    """As the per-row triggers do: nobody can delete a referenced row while the rows naming it are
    not committed (they would be left naming nobody)."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: no other transaction can delete meanwhile")
    person = _person(store)
    with store.transaction() as session:
        conn = session.connection()
        insert_with_ids(conn, ContactPoint.__table__, ("identity_id", "kind", "value", "status", "created_at"),  # type: ignore[arg-type]
                        _addresses(conn, [person] * CHECKED_TOGETHER_FROM))
        url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url) as other:
            other.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                other.execute("DELETE FROM identity WHERE id = %s", (person,))
    assert _count_addresses(store) == CHECKED_TOGETHER_FROM


def test_a_trigger_an_operator_added_still_runs_for_a_large_bulk_write(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("the per-block reference check is PostgreSQL's")
    person = _person(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE address_audit (value text)")
        conn.exec_driver_sql("CREATE FUNCTION audit_address() RETURNS trigger LANGUAGE plpgsql AS "
                             "$$ BEGIN INSERT INTO address_audit VALUES (NEW.value); RETURN NEW; END $$")
        conn.exec_driver_sql("CREATE TRIGGER audited AFTER INSERT ON contact_point "
                             "FOR EACH ROW EXECUTE FUNCTION audit_address()")
    try:
        with store.transaction() as session:
            conn = session.connection()
            insert_with_ids(conn, ContactPoint.__table__, ("identity_id", "kind", "value", "status", "created_at"),  # type: ignore[arg-type]
                            _addresses(conn, [person] * CHECKED_TOGETHER_FROM))
        with store.engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM address_audit").scalar_one() == CHECKED_TOGETHER_FROM
    finally:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER audited ON contact_point")
            conn.exec_driver_sql("DROP FUNCTION audit_address()")
            conn.exec_driver_sql("DROP TABLE address_audit")


def test_a_role_checks_references_per_block_only_once_granted_the_switch(store: Store) -> None:
    # What the README tells operators: without the grant, a plain role keeps the per-row
    # triggers; `GRANT SET ON PARAMETER session_replication_role` lets its bulk writes switch them.
    if store.dialect != "postgresql":
        pytest.skip("a PostgreSQL role's privilege")
    role = f"consentgate_test_{uuid.uuid4().hex[:12]}"
    url = store.engine.url
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False),
                         autocommit=True) as admin:
        if admin.info.parameter_status("is_superuser") != "on":
            pytest.skip("creating a role and granting SET on a parameter take a superuser")
        admin.execute(f"CREATE ROLE {role} LOGIN")
        try:
            for granted in (False, True):
                if granted:
                    admin.execute(f"GRANT SET ON PARAMETER session_replication_role TO {role}")
                engine = create_engine(url.set(username=role, password=None))
                try:
                    with engine.connect() as conn:
                        assert may_skip_triggers(conn) is granted
                finally:
                    engine.dispose()
        finally:
            admin.execute(f"REVOKE SET ON PARAMETER session_replication_role FROM {role}")
            admin.execute(f"DROP ROLE {role}")
