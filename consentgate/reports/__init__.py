"""Auditor reports: streamed exports of the ledger, the decision log and opt-out attribution."""
