"""consentgate qa against a running deployment: every step passes, and a broken one fails."""

from __future__ import annotations

from click.testing import CliRunner

from consentgate.cli import cli


def test_qa_passes_against_a_live_server(live_server, keys) -> None:  # type: ignore[no-untyped-def]
    key = keys["admin"]["Authorization"].removeprefix("Bearer ")
    for provider, secret in (("generic", "generic-webhook-secret"), ("twilio", "twilio-test-token")):
        result = CliRunner().invoke(cli, ["qa", "--url", live_server, "--api-key", key, "--provider", provider,
                                          "--secret", secret, "--public-url", live_server])
        assert result.exit_code == 0, result.output
        assert result.output.count("PASS  ") == 10 and "FAIL" not in result.output


def test_qa_fails_when_the_webhook_secret_is_wrong(live_server, keys) -> None:  # type: ignore[no-untyped-def]
    key = keys["admin"]["Authorization"].removeprefix("Bearer ")
    result = CliRunner().invoke(cli, ["qa", "--url", live_server, "--api-key", key, "--secret", "wrong"])
    assert result.exit_code == 1
    assert "FAIL  signed STOP" in result.output and "FAIL  SMS is denied at once" in result.output
