"""CSV imports: good rows written, bad rows reported by line, re-imports matching the same people."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentgate.cli import cli
from consentgate.store.models import ConsentEvent, DncNumber, Identity, Suppression

ROOT = Path(__file__).resolve().parents[2]
WHEN = (datetime.now(UTC) - timedelta(days=3)).isoformat()


@pytest.fixture
def env(cli_env, tmp_path):  # type: ignore[no-untyped-def]
    cli_env()
    return tmp_path


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args))


def test_consents_good_rows_in_bad_rows_reported(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "consents.csv"
    csv_file.write_text(
        "phone,email,channel,purpose,consent_type,captured_at,source,proof_uri,external_id,timezone\n"
        f"(305) 555-0100,,sms,marketing,express_written,{WHEN},web,https://p.example.com/1,crm-1,America/New_York\n"
        f"555,,sms,marketing,express,{WHEN},web,,,\n"
        f"+13055550101,,fax,marketing,express,{WHEN},web,,,\n"
        f"+13055550102,,sms,marketing,express_written,{WHEN},web,,,\n"
        f",Pat@Corp.com,email,marketing,implied_ebr,{WHEN},crm,,crm-2,\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2, result.output
    assert "line 3: phone:" in result.stderr
    assert "line 4: channel:" in result.stderr
    assert "line 5: proof_uri:" in result.stderr
    assert "5 rows read, 2 imported, 3 rejected" in result.stdout
    assert len(rows(ConsentEvent)) == 2
    people = rows(Identity)
    assert sorted(p.external_id or "" for p in people) == ["crm-1", "crm-2"]

    # The same people again, spelled differently: no new identity.
    again = env / "again.csv"
    again.write_text("phone,email,channel,purpose,consent_type,captured_at,source\n"
                     f"+1 305.555.0100,,sms,informational,express,{WHEN},web\n"
                     f",PAT@corp.COM,email,informational,implied_ebr,{WHEN},crm\n")
    assert run("import", "consents", str(again)).exit_code == 0
    assert len(rows(Identity)) == 2 and len(rows(ConsentEvent)) == 4


def test_dry_run_and_errors_file(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "c.csv"
    csv_file.write_text("email,channel,purpose,consent_type,captured_at,source\n"
                        f"a@b.com,email,marketing,express,{WHEN},x\nbad,email,marketing,express,{WHEN},x\n")
    errors = env / "rejects.csv"
    result = run("import", "consents", "--dry-run", "--errors", str(errors), str(csv_file))
    assert result.exit_code == 2
    assert rows(ConsentEvent) == [] and rows(Identity) == []
    assert "2 rows read, 1 valid, 1 rejected" in result.stdout
    lines = errors.read_text().splitlines()
    assert lines[0] == "line,field,message,email,channel,purpose,consent_type,captured_at,source"
    assert lines[1].startswith("3,email,") and lines[1].endswith(f",bad,email,marketing,express,{WHEN},x")


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_blank_cell_is_an_empty_one(env, rows, dry_run) -> None:  # type: ignore[no-untyped-def]
    # A cell of spaces says nothing, whichever way the row is written (or only checked).
    csv_file = env / "blank.csv"
    csv_file.write_text("email,phone,channel,purpose,consent_type,captured_at,source,brand\n"
                        f"a@corp.com,,email,marketing,express,{WHEN},crm, \n"
                        f" ,3055550101,sms,informational,express,{WHEN},crm,\n")
    result = run("import", "consents", *(["--dry-run"] if dry_run else []), str(csv_file))
    assert result.exit_code == 0, result.output
    assert len(rows(ConsentEvent)) == (0 if dry_run else 2)
    assert all(event.brand is None for event in rows(ConsentEvent))


def test_a_row_naming_a_person_by_id_says_where_they_are(env, rows) -> None:  # type: ignore[no-untyped-def]
    # Time zone and state decide calling hours: given for a person named by id, they are checked
    # and kept, as for a person named by address.
    person = env / "person.csv"
    person.write_text("phone,channel,purpose,consent_type,captured_at,source\n"
                      f"3055550101,sms,informational,express,{WHEN},crm\n")
    assert run("import", "consents", str(person)).exit_code == 0
    [known] = rows(Identity)
    csv_file = env / "by_id.csv"
    csv_file.write_text("identity_id,timezone,state,company_domain,channel,purpose,consent_type,captured_at,source\n"
                        f"{known.id},America/Los_Angeles,CA,www.Acme.com,sms,informational,express,{WHEN},crm\n"
                        f"{known.id},Mars/Base,ZZ,,sms,informational,express,{WHEN},crm\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2, result.output
    assert "line 3: timezone:" in result.stderr and "2 rows read, 1 imported, 1 rejected" in result.stdout
    [known] = rows(Identity)
    assert (known.timezone, known.state, known.account_domain) == ("America/Los_Angeles", "CA", "acme.com")


def test_unusable_files_exit_1(env) -> None:  # type: ignore[no-untyped-def]
    assert run("import", "consents", str(env / "missing.csv")).exit_code == 1
    header_only = env / "h.csv"
    header_only.write_text("email,channel\n")
    result = run("import", "consents", str(header_only))
    assert result.exit_code == 1 and "purpose" in result.output


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_row_whose_cells_do_not_line_up_with_the_header_is_rejected(env, rows, dry_run) -> None:  # type: ignore[no-untyped-def]
    """An unquoted comma in a cell shifts every cell after it: the row is not read as it falls."""
    csv_file = env / "shifted.csv"
    csv_file.write_text("email,channel,purpose,consent_type,captured_at,source,consent_text\n"
                        f"a@corp.com,email,marketing,express,{WHEN},web,Yes, send me offers\n"
                        f"b@corp.com,email,marketing,express,{WHEN},web\n"
                        f"c@corp.com,email,marketing,express,{WHEN},web,\"Yes, send me offers\"\n")
    result = run("import", "consents", *(["--dry-run"] if dry_run else []), str(csv_file))
    assert result.exit_code == 2, result.output
    assert "line 2: 8 cells where the header has 7 columns" in result.stderr
    assert "line 3: 6 cells where the header has 7 columns" in result.stderr
    assert "3 rows read, 1 " in result.stdout
    if not dry_run:
        assert [c.consent_text for c in rows(ConsentEvent)] == ["Yes, send me offers"]
    shifted = env / "shifted-suppressions.csv"
    shifted.write_text("email,phone,kind\nx@corp.com,,bounce,hard\ny@corp.com,,bounce\n")
    result = run("import", "suppressions", *(["--dry-run"] if dry_run else []), str(shifted))
    assert result.exit_code == 2 and "line 2: 4 cells where the header has 3 columns" in result.stderr


def test_a_header_naming_a_column_twice_is_refused(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "twice.csv"
    csv_file.write_text(f"email,email,channel,purpose,consent_type,captured_at,source\n"
                        f"a@corp.com,b@corp.com,email,marketing,express,{WHEN},web\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 1 and "email more than once" in result.output
    assert rows(ConsentEvent) == []


def test_suppressions(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "s.csv"
    csv_file.write_text("email,phone,kind,since,note\nx@corp.com,,bounce,,hard bounce\n"
                        ",+13055550109,reassigned,2026-01-01T00:00:00Z,\n,+13055550110,gone,,\n")
    result = run("import", "suppressions", str(csv_file))
    assert result.exit_code == 2 and "line 4: kind" in result.stderr
    assert sorted(s.kind for s in rows(Suppression)) == ["bounce", "reassigned"]
    assert {s.source for s in rows(Suppression)} == {"import"}


def test_dnc_both_formats_and_replace(env, rows) -> None:  # type: ignore[no-untyped-def]
    first = env / "dnc1.txt"
    first.write_text("3055550120\n3055550121\n3055550121\nnot-a-number\n")
    result = run("import", "dnc", "--snapshot-date", "2026-11-01", str(first))
    assert result.exit_code == 2, result.output
    assert sorted(n.phone for n in rows(DncNumber)) == ["+13055550120", "+13055550121"]
    second = env / "dnc2.csv"
    second.write_text("area,number\n305,5550121\n305,5550122\n")
    assert run("import", "dnc", "--snapshot-date", "2026-11-15", "--replace", str(second)).exit_code == 0
    listed = {n.phone: n.removed_at for n in rows(DncNumber)}
    assert listed["+13055550120"] is not None
    assert listed["+13055550121"] is None and listed["+13055550122"] is None


def test_bulk_rows_dedupe_merge_and_chain(env, rows, store) -> None:  # type: ignore[no-untyped-def]
    from consentgate.store import chain

    csv_file = env / "mix.csv"
    csv_file.write_text(
        "email,phone,channel,purpose,consent_type,captured_at,source\n"
        f"one@corp.com,,email,marketing,double_opt_in,{WHEN},crm\n"
        f"ONE@corp.com,(305) 555-0130,email,informational,double_opt_in,{WHEN},crm\n"   # same person, new phone
        f",+13055550130,sms,informational,express,{WHEN},crm\n"                      # the phone again
        f"two@corp.com,,email,marketing,double_opt_in,{WHEN},crm\n"
        f"two@corp.com,305-555-0130,email,marketing,double_opt_in,{WHEN},crm\n")     # names two people: a merge
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 0, result.output
    assert len(rows(ConsentEvent)) == 5
    live = [p for p in rows(Identity) if p.merged_into_id is None]
    assert len(live) == 1
    with store.transaction(write=False) as session:
        verified = chain.verify(session)
    assert verified.ok and verified.checked >= 5


def test_line_numbers_hold_across_chunks(env, rows, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Rows are numbered by file line, whichever chunk and path (bulk or one row at a time) they take."""
    from consentgate.services import imports

    monkeypatch.setattr(imports, "BULK_CHUNK", 3)
    lines = ["email,channel,purpose,consent_type,captured_at,source,external_id"]
    for i in range(10):
        email = "not-an-email" if i in (2, 7) else f"p{i}@corp.com"
        lines.append(f"{email},email,marketing,double_opt_in,{WHEN},crm,{'crm-9' if i == 9 else ''}")
    csv_file = env / "chunks.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["line 4", "line 9"]
    assert "10 rows read, 8 imported, 2 rejected" in result.stdout
    assert len(rows(ConsentEvent)) == 8


def test_unreadable_bytes_stop_the_import_naming_the_line(env) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "latin1.csv"
    csv_file.write_bytes(b"email,channel,purpose,consent_type,captured_at,source\n"
                         b"Jos\xe9@corp.com,email,marketing,double_opt_in,2026-01-01T00:00:00Z,crm\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 1 and "cannot be read" in result.output


def test_a_dnc_change_list_adds_and_deletes(env, rows) -> None:  # type: ignore[no-untyped-def]
    full = env / "full.txt"
    full.write_text("3055550101\n3055550102\n")
    assert run("import", "dnc", "--snapshot-date", "2026-11-01", "--replace", str(full)).exit_code == 0
    changes = env / "changes.csv"
    changes.write_text("305,5550105,A\n305,5550101,D\n3055550106,a\n305,5550107,X\n")
    result = run("import", "dnc", "--snapshot-date", "2026-12-01", str(changes))
    assert result.exit_code == 2 and "line 4: change:" in result.stderr, result.output
    assert "1 numbers no longer listed" in result.stdout
    listed = {n.phone: n.removed_at is None for n in rows(DncNumber)}
    assert listed == {"+13055550101": False, "+13055550102": True, "+13055550105": True, "+13055550106": True}
    # Deleting a number no longer listed changes nothing.
    again = env / "again.csv"
    again.write_text("305,5550101,D\n")
    assert run("import", "dnc", "--snapshot-date", "2026-12-02", str(again)).exit_code == 0
    assert {n.phone: n.removed_at is None for n in rows(DncNumber)}["+13055550101"] is False


def test_dnc_replace_keeps_numbers_of_the_same_snapshot(env, rows) -> None:  # type: ignore[no-untyped-def]
    """Area-code files of one download, loaded one by one, do not remove each other."""
    (env / "305.txt").write_text("3055550140\n")
    (env / "786.txt").write_text("7865550141\n")
    assert run("import", "dnc", "--snapshot-date", "2026-11-01", str(env / "305.txt")).exit_code == 0
    result = run("import", "dnc", "--snapshot-date", "2026-11-01", "--replace", str(env / "786.txt"))
    assert result.exit_code == 0 and "0 numbers no longer listed" in result.stdout
    assert all(n.removed_at is None for n in rows(DncNumber)) and len(rows(DncNumber)) == 2


def test_dnc_rejects_file(env) -> None:  # type: ignore[no-untyped-def]
    registry = env / "dnc.txt"
    registry.write_text("phone\n3055550150\n12345\n")
    errors = env / "rejects.csv"
    result = run("import", "dnc", "--errors", str(errors), str(registry))
    assert result.exit_code == 2 and "2 rows read, 1 listed, 1 rejected" in result.stdout
    assert errors.read_text().splitlines() == ["line,field,message,number", "3,phone,not a valid phone number,12345"]


def test_blocks_planned_by_workers_keep_lines_quoted_cells_and_the_chain(env, rows, store,  # type: ignore[no-untyped-def]
                                                                          monkeypatch) -> None:
    """Blocks of a few records each are planned by worker processes: every row lands once, quoted
    cells spanning lines stay whole, rejects keep their file line, and the chain verifies."""
    from consentgate.services import imports
    from consentgate.store import chain

    monkeypatch.setattr(imports, "BULK_CHUNK", 4)
    lines = ["email,phone,channel,purpose,consent_type,captured_at,source,consent_text"]
    for i in range(30):
        if i == 5:
            lines.append(f'p{i}@corp.com,,email,marketing,double_opt_in,{WHEN},crm,"two\nlines, ""quoted"""')
        elif i in (11, 23):
            lines.append(f",555,sms,marketing,express_written,{WHEN},crm,")       # line 13 and 26: bad numbers
        elif i % 2:
            lines.append(f",(305) 555-{i:04d},sms,informational,express,{WHEN},crm,")
        else:
            lines.append(f"P{i}@Corp.com,,email,marketing,double_opt_in,{WHEN},crm,")
    csv_file = env / "blocks.csv"
    csv_file.write_text("\n".join(lines) + "\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2, result.output
    assert [line.split(":")[0] for line in result.stderr.splitlines()] == ["line 14", "line 26"]
    assert "30 rows read, 28 imported, 2 rejected" in result.stdout
    events = rows(ConsentEvent)
    assert len(events) == 28
    assert [e.consent_text for e in events if e.consent_text] == ['two\nlines, "quoted"']
    assert {e.captured_at for e in events} == {datetime.fromisoformat(WHEN)}
    with store.transaction(write=False) as session:
        verified = chain.verify(session)
    assert verified.ok and verified.checked == 28


def test_a_bad_line_after_several_blocks_keeps_the_rows_above_it(env, rows, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from consentgate.services import imports

    monkeypatch.setattr(imports, "BULK_CHUNK", 3)
    good = "".join(f"p{i}@corp.com,email,marketing,double_opt_in,{WHEN},crm\n" for i in range(10))
    csv_file = env / "stops.csv"
    csv_file.write_bytes(b"email,channel,purpose,consent_type,captured_at,source\n" + good.encode()
                         + b"Jos\xe9@corp.com,email,marketing,double_opt_in,2026-01-01T00:00:00Z,crm\n"
                         + b"late@corp.com,email,marketing,double_opt_in,2026-01-01T00:00:00Z,crm\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 1 and "line 12: cannot be read" in result.output, result.output
    assert len(rows(ConsentEvent)) == 10


def test_a_worker_that_dies_stops_the_import_at_its_block(env, rows, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A planning worker killed mid-file (out of memory, say) never makes the import skip its rows."""
    import os

    from consentgate.services import imports, planning

    monkeypatch.setattr(imports, "BULK_CHUNK", 3)
    real = planning.plan_block

    def dies_at_line_8(block, *args):  # type: ignore[no-untyped-def]
        if block.first_line == 8:
            os._exit(9)   # as the kernel's OOM killer would end it: no exception, no answer
        return real(block, *args)

    monkeypatch.setattr(planning, "plan_block", dies_at_line_8)
    good = "".join(f"p{i}@corp.com,email,marketing,double_opt_in,{WHEN},crm\n" for i in range(12))
    csv_file = env / "dies.csv"
    csv_file.write_text("email,channel,purpose,consent_type,captured_at,source\n" + good)
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 1, result.output
    # The pool gives up on every block in flight; which of them had already been answered is timing.
    stopped = re.search(r"rows before line (\d+) were kept", result.output)
    assert stopped is not None and int(stopped[1]) in (5, 8), result.output
    assert len(rows(ConsentEvent)) == int(stopped[1]) - 2


def _messy_export(seed: int, rows: int, said: float = 0.05) -> str:
    """A CRM export as they come: people seen again in other spellings, rows that link an email
    to a phone (merges), identity columns, quoted text with commas and line breaks, bad rows."""
    import csv
    import io
    import random

    pick = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "phone", "channel", "purpose", "consent_type", "captured_at", "source",
                     "proof_uri", "consent_text", "external_id", "state", "timezone", "name", "company_domain"])
    spell = ["+1 305-555-{:04d}", "(305) 555-{:04d}", "305.555.{:04d}", "1-305-555-{:04d}", "305555{:04d}"]
    for i in range(rows):
        n = pick.randrange(60)
        email = pick.choice([f"P{n}@Corp{n % 7}.com", f"p{n}@corp{n % 7}.COM", f"p{n}@gmail.com", ""])
        phone = pick.choice(spell).format(100 + pick.randrange(60)) if pick.random() < 0.5 else ""
        if not email and not phone:
            email = f"only{i}@corp.com"
        channel = "email" if email and (not phone or pick.random() < 0.5) else "sms"
        consent_type, proof = ("express_written", f"https://proof.example.com/{i}") if channel == "sms" \
            else ("double_opt_in", "")
        text = pick.choice(["", "yes, please", 'said "ok"\nby phone'])
        # Identity columns: mostly the person's own CRM id, now and then another's (a merge), or a bad value.
        external = (f"crm-{n}" if pick.random() < 0.9 else f"crm-{pick.randrange(60)}") if pick.random() < said else ""
        state = pick.choice(["FL", "NY", "ZZZ"]) if pick.random() < said * 0.6 else ""
        zone = pick.choice(["America/Chicago", "Europe/Paris", "Mars/Base"]) if pick.random() < said * 0.6 else ""
        name = f"Person {n}" if pick.random() < said else ""
        company = pick.choice(["acme.com", "www.Zest.io", "not a domain"]) if pick.random() < said * 0.3 else ""
        when = WHEN
        roll = pick.random()
        if roll < 0.02:
            email, channel = "not-an-email", "email"
        elif roll < 0.04:
            phone, channel, email = "555", "sms", ""
        elif roll < 0.05:
            channel = "pigeon"
        elif roll < 0.06:
            proof = "" if channel == "sms" else proof
        writer.writerow([email, phone, channel, "marketing", consent_type, when, "crm", proof, text, external, state,
                         zone, name, company])
    return out.getvalue()


def _ledger(rows) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """What an import leaves, independent of the order rows were written in (ids differ)."""
    from consentgate.store.models import ContactPoint

    people: dict[int, set[str]] = {}
    survivors = {p.id: p for p in rows(Identity) if p.merged_into_id is None}
    points = {cp.id: cp for cp in rows(ContactPoint)}
    for cp in points.values():
        people.setdefault(cp.identity_id, set()).add(cp.value)
    groups = {frozenset(values): (survivors[i].external_id, survivors[i].state, survivors[i].account_domain,
                                  survivors[i].timezone, survivors[i].name, survivors[i].country)
              for i, values in people.items()}
    # People known by their external id alone (no address) are people too.
    groups.update({frozenset({f"external:{p.external_id}"}): (p.external_id, p.state, p.account_domain, p.timezone,
                                                               p.name, p.country)
                   for p in survivors.values() if p.id not in people})
    events = sorted((points[e.contact_point_id].value, e.channel, e.consent_type, e.captured_at, e.proof_uri or "",
                     e.consent_text or "") for e in rows(ConsentEvent))
    return {"groups": groups, "events": events}


@pytest.mark.parametrize("seed, said", [(11, 0.05), (16, 0.05), (19, 0.05), (23, 0.6), (29, 0.9)])
def test_the_bulk_path_writes_what_the_one_row_path_writes(env, rows, store, wipe, policy,  # type: ignore[no-untyped-def]
                                                           monkeypatch, seed, said) -> None:
    """The same messy export imported row by row, as POST /v1/consents would, and through the bulk
    path (blocks, worker processes, merges handed back): the same people, events and rejects; also
    when most rows say who the person is (CRM ids, zones, names, companies)."""
    import io

    from consentgate.services import imports
    from consentgate.store import chain

    text = _messy_export(seed=seed, rows=240, said=said)
    again = _messy_export(seed=seed + 1000, rows=240, said=said)     # the next export: mostly the same people
    now = datetime.now(UTC)

    def row_by_row(content: str) -> imports.ImportResult:
        reader = imports._reader(imports.checked_lines(io.StringIO(content)),
                                 imports.CONSENT_COLUMNS + imports.IDENTITY_COLUMNS, imports.CONSENT_REQUIRED)
        return imports._run(store, reader, lambda session, row: imports._write_consent_row(session, row, policy, now),
                            False)

    one_by_one = [row_by_row(text), row_by_row(again)]
    expected = _ledger(rows)
    wipe()
    monkeypatch.setattr(imports, "BULK_CHUNK", 25)
    bulk = [imports.import_consents(store, policy, io.StringIO(content), now) for content in (text, again)]
    for done, reference in zip(bulk, one_by_one, strict=True):
        assert done.imported == reference.imported and done.imported > 100
        assert [(r.line, r.field) for r in done.rejected] == [(r.line, r.field) for r in reference.rejected]
    assert _ledger(rows) == expected
    with store.transaction(write=False) as session:
        assert chain.verify(session).ok


def test_a_row_with_nul_is_rejected_by_line(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "nul.csv"
    csv_file.write_text("email,channel,purpose,consent_type,captured_at,source\n"
                        f"a@corp.com,email,marketing,double_opt_in,{WHEN},cr\x00m\n"
                        f"b@corp.com,email,marketing,double_opt_in,{WHEN},crm\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2 and "line 2: source:" in result.stderr
    assert [c.source for c in rows(ConsentEvent)] == ["crm"]


def test_a_proof_uri_that_cannot_be_split_is_rejected_by_line(env, rows) -> None:  # type: ignore[no-untyped-def]
    csv_file = env / "c.csv"
    csv_file.write_text("phone,channel,purpose,consent_type,captured_at,source,proof_uri\n"
                        f"+13055550100,sms,marketing,express_written,{WHEN},web,https://[2001:db8::1/form\n"
                        f"+13055550101,sms,marketing,express_written,{WHEN},web,https://p.example.com/1\n")
    result = run("import", "consents", str(csv_file))
    assert result.exit_code == 2, result.output
    assert "line 2: proof_uri:" in result.stderr
    assert "2 rows read, 1 imported, 1 rejected" in result.stdout
    assert len(rows(ConsentEvent)) == 1


def test_a_suppression_file_writes_what_the_same_rows_sent_one_by_one_write(  # type: ignore[no-untyped-def]
        runtime, client, keys, rows) -> None:
    """The import writes its good rows together; the API writes one at a time: the same rows must
    give the same people, address statuses, suppressions and errors, and a chain that verifies."""
    import io

    from consentgate.services.imports import import_suppressions
    from consentgate.store.models import ContactPoint

    def rows_for(t: str) -> list[tuple[str, str, str, str, str]]:
        return [
            (f"x{t}@corp{t}.com", "", "bounce", "", "hard bounce"),
            (f"X{t}@Corp{t}.com", "", "complaint", "", ""),                  # the same mailbox
            ("", f"+130555501{t}1", "reassigned", "2026-01-01T00:00:00Z", ""),
            ("", f"(305) 555-01{t}2", "reassigned", "", "no date: from now"),
            ("", f"+130555501{t}3", "bounce", "", ""),                      # a bounce needs an email
            (f"y{t}@gmail.com", "", "dnc_national", "", ""),                  # the registry lists numbers
            ("", "12", "bounce", "", ""),
            (f"z{t}@corp{t}.com", f"+130555501{t}4", "legal_hold", "", ""),   # one address per row
            ("", f"305.555.01{t}1", "dnc_national", "", "listed"),            # someone from above
            (f"known{t}@corp{t}.com", "", "litigator", "", "on a list"),      # someone already known
            ("", f"+130555501{t}5", "gone", "", ""),
        ]

    known = {t: client.post("/v1/identities", json={"email": f"known{t}@corp{t}.com"},
                            headers=keys["writer"]).get_json()["identity_id"] for t in "12"}
    text = "email,phone,kind,since,note\n" + "".join(",".join(r) + "\n" for r in rows_for("1"))
    result = import_suppressions(runtime.store, runtime.policy, io.StringIO(text), runtime.clock())
    from_file: list[object] = [None] * len(rows_for("1"))
    for rejected in result.rejected:
        from_file[rejected.line - 2] = from_file[rejected.line - 2] or []
        from_file[rejected.line - 2].append((rejected.field, rejected.message))  # type: ignore[union-attr]
    one_by_one: list[object] = []
    for email, phone, kind, since, note in rows_for("2"):
        body = {k: v for k, v in (("email", email), ("phone", phone), ("kind", kind), ("since", since),
                                  ("note", note)) if v}
        answer = client.post("/v1/suppressions", json=body, headers=keys["writer"])
        one_by_one.append(None if answer.status_code == 201 else
                          [(e["field"], e["message"]) for e in answer.get_json()["errors"]])
    assert from_file == one_by_one
    assert (result.read, result.imported) == (11, 6)

    written = sorted(rows(Suppression), key=lambda s: s.id)
    addresses = {cp.id: cp for cp in rows(ContactPoint)}

    def shape(source: str) -> list[tuple[object, ...]]:
        """The suppressions one way wrote, people as first-seen labels, with their address's status."""
        people: dict[int, str] = {known["1"]: "known", known["2"]: "known"}
        out = []
        for s in written:
            if s.source == source:
                cp = addresses[s.contact_point_id]
                out.append((people.setdefault(s.identity_id, f"person{len(people)}"), cp.kind, cp.status, s.kind,
                            s.since, s.note))
        return out

    assert shape("import") == shape("api")
    assert [row[2] for row in shape("import")] == ["complained", "complained", "reassigned", "reassigned",
                                                    "reassigned", "active"]
    views = {t: client.get(f"/v1/identities?email=x{t}@corp{t}.com", headers=keys["auditor"]).get_json()
             for t in "12"}
    assert views["1"]["account_domain"] == "corp1.com" and views["2"]["account_domain"] == "corp2.com"
    assert client.get("/v1/audit/verify", headers=keys["auditor"]).get_json()["ok"] is True
