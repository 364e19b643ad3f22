"""Shared fixtures: every test gets its own NETTRACE_HOME and never touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace_dagster.settings import Settings, load_settings

# PostgreSQL fixtures (pg_database, pg_url) and what counts as a passing run (no skips in CI).
pytest_plugins = ("tests.pg", "tests.ci")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh NETTRACE_HOME (and DAGSTER_HOME inside it) for one test."""
    root = tmp_path / "nettrace"
    monkeypatch.setenv("NETTRACE_HOME", str(root))
    monkeypatch.setenv("DAGSTER_HOME", str(root / "dagster"))
    monkeypatch.delenv("NETTRACE_LEDGER_URL", raising=False)
    return root


@pytest.fixture
def settings(home: Path) -> Settings:
    return load_settings()
