"""Shared fixtures: every test gets its own NETTRACE_HOME and never touches the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from nettrace_dagster.settings import Settings, load_settings

# PostgreSQL fixtures (pg_database, pg_url) and what counts as a passing run (no skips in CI).
pytest_plugins = ("tests.pg", "tests.ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `slow` tests first, the longest first (their `seconds`): on two xdist workers a 90 s test
    started near the end would run alone while the other worker idles. xdist hands out whole files
    (--dist loadfile) in the order their first test appears here, so a slow test's file goes first.
    Every worker sorts the same collection the same way (xdist checks that); the sort is stable,
    so the rest keep their file order."""
    def seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("slow")
        if marker is None:
            return 0.0
        return float(marker.kwargs.get("seconds", marker.args[0] if marker.args else 1.0))

    items.sort(key=seconds, reverse=True)


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
