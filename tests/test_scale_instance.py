"""The instance config and the executor the scale-out settings produce (fast, no services)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nettrace_dagster.distributed import backend_url, executor_for
from nettrace_dagster.instance import PG_STORAGE, prepare_home
from nettrace_dagster.settings import SettingsError, load_settings

PG = "postgresql+psycopg2://nettrace:s3cret-pw@db.example:5432/dagster"


def _yaml(home: Path) -> dict:
    return yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())


def test_pg_url_puts_storage_on_postgres_by_reference(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_DAGSTER_PG_URL", PG)
    prepare_home(load_settings())
    text = (home / "dagster" / "dagster.yaml").read_text()
    assert _yaml(home)["storage"] == {"postgres": {"postgres_url": {"env": "NETTRACE_DAGSTER_PG_URL"}}}
    assert "s3cret-pw" not in text and "db.example" not in text  # the name of the variable, never its value


def test_switching_off_restores_sqlite_and_keeps_user_keys(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_DAGSTER_PG_URL", PG)
    prepare_home(load_settings())
    config = _yaml(home)
    config["run_monitoring"] = {"enabled": True}  # a key the user added by hand
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.delenv("NETTRACE_DAGSTER_PG_URL")
    prepare_home(load_settings())
    config = _yaml(home)
    assert "storage" not in config and config["run_monitoring"] == {"enabled": True}
    assert config["telemetry"] == {"enabled": False}


def test_a_hand_written_storage_block_is_never_dropped(home: Path) -> None:
    (home / "dagster").mkdir(parents=True)
    mine = {"storage": {"sqlite": {"base_dir": "/elsewhere"}}}
    (home / "dagster" / "dagster.yaml").write_text(yaml.safe_dump(mine))
    prepare_home(load_settings())
    assert _yaml(home)["storage"] == mine["storage"] != PG_STORAGE


@pytest.mark.parametrize("name, value", [
    ("NETTRACE_DAGSTER_PG_URL", "postgresql://u:pw@h/d"),  # psycopg 3 under SQLAlchemy 2.1: NOTIFY breaks
    ("NETTRACE_DAGSTER_PG_URL", "sqlite:///x.db"),
    ("NETTRACE_CELERY_BROKER_URL", "http://127.0.0.1:6379"),
    ("NETTRACE_CELERY_BACKEND_URL", "memcache://x"),
])
def test_bad_urls_are_one_line_errors_without_the_value(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: value})
    assert name in str(err.value) and value not in str(err.value) and "\n" not in str(err.value)


def test_executor_follows_the_broker_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert executor_for(load_settings({})) is None  # Dagster's default executor
    url = "redis://:pw@broker:6379/0"
    settings = load_settings({"NETTRACE_CELERY_BROKER_URL": url})
    executor = executor_for(settings)
    assert executor is not None and executor.name == "celery"
    # The config names the variable: resolved from each process's environment, never stored.
    monkeypatch.delenv("NETTRACE_CELERY_BROKER_URL", raising=False)
    unresolved = executor.config_schema.resolve_config({})
    assert not unresolved.success and len(unresolved.errors) == 2  # broker and backend both by name
    assert all("NETTRACE_CELERY_BROKER_URL" in e.message for e in unresolved.errors)
    monkeypatch.setenv("NETTRACE_CELERY_BROKER_URL", url)
    resolved = executor.config_schema.resolve_config({})
    assert resolved.success and resolved.value["config"]["broker"] == url == resolved.value["config"]["backend"]
    assert backend_url(settings) == "redis://:pw@broker:6379/0"
    assert backend_url(load_settings({"NETTRACE_CELERY_BROKER_URL": "amqp://g:g@h:5672//"})) == "rpc://"
