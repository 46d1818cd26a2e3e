"""The command line: keys, policy check, db upgrade, audit verify."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from consentgate.cli import cli
from consentgate.services.keys import authenticate
from consentgate.store.db import Store
from consentgate.store.migrate import head_revision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("CONSENTGATE_DATABASE_URL", store.url)
    monkeypatch.setenv("CONSENTGATE_SECRET_FILE", str(tmp_path / "secret"))
    monkeypatch.setenv("CONSENTGATE_POLICY", str(ROOT / "policies" / "default.yaml"))
    return store


def test_keys_create_prints_the_key_alone_on_its_last_line(env: Store) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--role", "auditor", "--name", "counsel"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("cg_") and " " not in token
    actor = authenticate(env, token)
    assert actor is not None and actor.role == "auditor" and actor.name == "counsel"


def test_keys_list_and_revoke(env: Store) -> None:
    runner = CliRunner()
    token = runner.invoke(cli, ["keys", "create", "--role", "sender"]).stdout.strip().splitlines()[-1]
    listing = runner.invoke(cli, ["keys", "list"]).stdout
    assert token[:10] in listing and token not in listing
    key_id = listing.split("\t")[0]
    assert runner.invoke(cli, ["keys", "revoke", key_id]).exit_code == 0
    assert authenticate(env, token) is None


def test_keys_create_refuses_an_unknown_role(env: Store) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--role", "root"])
    assert result.exit_code != 0


def test_keys_create_refuses_a_name_longer_than_the_store_keeps(env: Store) -> None:
    result = CliRunner().invoke(cli, ["keys", "create", "--role", "sender", "--name", "x" * 201])
    assert result.exit_code == 2 and "--name" in result.output


def test_policy_check_accepts_the_default_and_names_problems(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["policy", "check", str(ROOT / "policies" / "default.yaml")])
    assert ok.exit_code == 0 and "version" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "policies" / "default.yaml").read_text().replace('end: "21:00"', 'end: "07:00"'))
    result = runner.invoke(cli, ["policy", "check", str(bad)])
    assert result.exit_code != 0
    assert "quiet_hours.federal" in str(result.exception) or "quiet_hours.federal" in result.output


def test_db_upgrade_reports_the_revision(env: Store) -> None:
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"revision {head_revision(env)}" in result.output


def test_audit_verify_on_an_empty_ledger(env: Store) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 0
    assert '"ok": true' in result.output


@pytest.mark.parametrize("command", [["erase", "--identity-id", "2147483648"], ["replay", "2147483648"],
                                     ["evidence", "0"]])
def test_ids_no_row_can_have_are_refused_before_the_store_is_asked(env: Store, command: list[str]) -> None:
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2 and "range" in result.output
