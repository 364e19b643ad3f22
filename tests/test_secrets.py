"""No secret reaches the Dagster UI, a run's logs or the audit logs (issue 7, item 9).

The UI renders the code location's repository snapshot: every resource with its configured
values, every job's config schema with its defaults. A PostgreSQL password in NETTRACE_LEDGER_URL,
an exchange key or a webhook token there would be on every screen; in a run's event log or
compute logs it would be in the instance's storage for good.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

# Secret settings, each a string that must appear nowhere the UI, the logs or the audits can show.
SECRETS = {
    "NETTRACE_EXCHANGE_API_KEY": "key-5a1f0c9e77", "NETTRACE_EXCHANGE_API_SECRET": "secret-c0ffee42d1",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/T000/B000/slacktoken9f3",
    "DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/1/discordtoken77",
    "FLY_API_TOKEN": "fly-token-4b2e8d", "ANTHROPIC_API_KEY": "sk-ant-test-9d8c7b",
}
PASSWORD = "s3cretpw"
ROOT = Path(__file__).resolve().parents[1]


def secret_strings() -> list[str]:
    return [PASSWORD, *SECRETS.values()]


def leaks(text: str) -> list[str]:
    return [s for s in secret_strings() if s in text]


@pytest.fixture
def secret_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NETTRACE_MARKET_SOURCE", "sim")
    monkeypatch.setenv("NETTRACE_SIM_BARS", "1500")
    monkeypatch.setenv("NETTRACE_TRADER_CATCH_UP_BARS", "60")  # a few orders, not a day of them
    return SECRETS


def test_no_secret_in_the_code_location_snapshot_the_ui_serves(secret_env: dict[str, str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI renders the repository snapshot (resources with their configured values, every job's
    config schema and defaults): a ledger password or key there is on every screen."""
    from nettrace_dagster.definitions import build_definitions

    monkeypatch.setenv("NETTRACE_LEDGER_URL", f"postgresql://u:{PASSWORD}@127.0.0.1:5432/x")
    built = build_definitions()
    repo = built.get_repository_def()
    snapshot = serialize_value(RepositorySnap.from_def(repo))
    assert "ExternalResourceData" in snapshot and "ExecutionResource" in snapshot  # the resources are in it
    assert leaks(snapshot) == []
    for name, resource in repo.get_top_level_resources().items():
        assert leaks(repr(resource)) == [], name
        assert leaks(str(resource.config_schema.default_value_as_json_str
                         if resource.config_schema.default_provided else "")) == [], name


@pytest.fixture
def pg_ledger_url(pg_url: str) -> str:
    """The real PostgreSQL (tests/pg.py), with a password in the URL (trust auth ignores it)."""
    scheme, rest = pg_url.split("//", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}//{user}:{PASSWORD}@{host}"


def run_trading_tick(home: Path) -> tuple[dg.DagsterInstance, list[str]]:
    """Candles for every symbol (on a throwaway instance: only the lake keeps them), then one
    trading tick on the persistent instance under DAGSTER_HOME; that instance and the tick's run id."""
    from nettrace_dagster.definitions import build_definitions
    from nettrace_dagster.partitions import symbol_partitions

    built = build_definitions()
    scratch = dg.DagsterInstance.ephemeral()
    for symbol in symbol_partitions.get_partition_keys():
        assert built.resolve_job_def("market_refresh").execute_in_process(partition_key=symbol,
                                                                          instance=scratch).success
    instance = dg.DagsterInstance.get()
    tick = built.resolve_job_def("trading_tick").execute_in_process(instance=instance, raise_on_error=False)
    return instance, [tick.run_id]


def everything_a_run_left(instance: dg.DagsterInstance, run_ids: list[str], home: Path) -> str:
    parts = []
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        parts.append(serialize_value(run))
        parts.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
        parts += [serialize_value(entry) for entry in instance.all_logs(run_id)]
    # Every byte under NETTRACE_HOME: audit logs, the lake, and DAGSTER_HOME's run and event
    # storage (SQLite) and captured compute logs.
    parts += [f.read_bytes().decode("latin-1") for f in home.rglob("*") if f.is_file()]
    return "\n".join(parts)


@pytest.mark.slow(seconds=16)
def test_a_run_on_a_password_protected_ledger_logs_no_secret(
        secret_env: dict[str, str], home: Path, pg_ledger_url: str, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NETTRACE_LEDGER_URL", pg_ledger_url)
    (home / "dagster").mkdir(parents=True)
    instance, run_ids = run_trading_tick(home)
    assert instance.get_run_by_id(run_ids[-1]).is_success
    # Once more as the scheduler would: a run in its own process, step logs captured to files.
    cli = subprocess.run([str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m",
                          "nettrace_dagster.definitions", "-a", "defs", "-j", "trading_tick"],
                         cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    out, err = capfd.readouterr()
    everything = everything_a_run_left(instance, [r.run_id for r in instance.get_runs()], home)
    assert "trading_tick" in everything and "portfolio" in everything
    assert leaks(everything + out + err + caplog.text + cli.stdout + cli.stderr) == []


def test_a_failing_ledger_connection_says_so_without_the_password(
        secret_env: dict[str, str], home: Path, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """The error a run shows when the ledger is unreachable names the host, never the password."""
    monkeypatch.setenv("NETTRACE_LEDGER_URL", f"postgresql://root:{PASSWORD}@127.0.0.1:1/nowhere")
    (home / "dagster").mkdir(parents=True)
    instance, run_ids = run_trading_tick(home)
    tick = instance.get_run_by_id(run_ids[-1])
    assert tick.is_failure
    [failure] = [e for e in instance.all_logs(run_ids[-1]) if e.dagster_event and e.dagster_event.is_step_failure]
    assert "127.0.0.1" in serialize_value(failure)  # the error is there, and says which server
    out, err = capfd.readouterr()
    assert leaks(everything_a_run_left(instance, run_ids, home) + out + err + caplog.text) == []
