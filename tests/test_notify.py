"""The notifier against loopback Slack/Discord webhook servers: fallback, never raising, every
alert audited, secrets never written, rate limiting, and the HARDSTOP P0 hook."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nettrace_dagster.audit import read_audit
from nettrace_dagster.notify import alert, reset_rate_limit
from nettrace_dagster.settings import load_settings
from tests.fakes.webhooks import WebhookServer


@pytest.fixture(autouse=True)
def _fresh_limits(home: Path) -> None:
    reset_rate_limit()


def trail(home: Path) -> list[dict]:
    return list(read_audit(home / "audit", "webhook_audit_trail"))


def env(monkeypatch: pytest.MonkeyPatch, slack: str = "", discord: str = "", **extra: str):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack)
    monkeypatch.setenv("DISCORD_WEBHOOK_URL", discord)
    monkeypatch.setenv("NETTRACE_ALERT_TIMEOUT_S", "1")
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    return load_settings()


def test_slack_delivers_and_the_trail_records_it_without_the_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer("slack").running() as slack, WebhookServer("discord").running() as discord:
        settings = env(monkeypatch, slack.url, discord.url)
        alert("P1", "Deploy r-1 rolled back", "canary lhr failed", settings)
        assert [p["text"] for p in slack.received] == ["[P1] Deploy r-1 rolled back\ncanary lhr failed"]
        assert discord.received == []
    [rec] = trail(home)
    assert (rec["severity"], rec["channel"], rec["status"]) == ("P1", "slack", "sent")
    raw = (home / "audit" / "webhook_audit_trail.jsonl").read_text()
    assert "XXXXSECRETXXXX" not in raw and "127.0.0.1" not in raw


def test_slack_down_falls_back_to_discord(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer("slack").running() as slack, WebhookServer("discord").running() as discord:
        slack.down = True
        settings = env(monkeypatch, slack.url, discord.url)
        alert("P2", "Deploy r-2: canary stage passed", "lhr, nrt healthy", settings)
        assert slack.received == [] and len(discord.received) == 1
        assert discord.received[0]["content"].startswith("[P2] Deploy r-2")
    [rec] = trail(home)
    assert (rec["channel"], rec["status"], rec["errors"]) == ("discord", "sent", ["slack: HTTP 500"])


def test_both_down_is_audited_and_never_raises(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer("slack").running() as slack, WebhookServer("discord").running() as discord:
        slack.down = discord.down = True
        settings = env(monkeypatch, slack.url, discord.url)
        alert("P0", "HARDSTOP on", "drawdown", settings)  # returns: no exception reaches the caller
    # and a webhook that is not even listening (connection refused) is no different
    settings = env(monkeypatch, "http://127.0.0.1:9/hooks/XXXXSECRETXXXX", "http://127.0.0.1:9/x/XXXXSECRETXXXX")
    alert("P0", "HARDSTOP on again", "drawdown", settings)
    recs = trail(home)
    assert [r["status"] for r in recs] == ["failed", "failed"]
    assert recs[0]["errors"] == ["slack: HTTP 500", "discord: HTTP 500"]
    assert all(e.endswith("ConnectError") for e in recs[1]["errors"]) and len(recs[1]["errors"]) == 2
    assert "XXXXSECRETXXXX" not in (home / "audit" / "webhook_audit_trail.jsonl").read_text()


def test_without_urls_alerts_are_logged_and_audited_only(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    settings = env(monkeypatch, NETTRACE_NODE_TOKEN="tok-very-secret-1234")
    with caplog.at_level("INFO", logger="nettrace.notify"):
        alert("P3", "info", "node token is tok-very-secret-1234", settings)
    [rec] = trail(home)
    assert (rec["status"], rec["channel"]) == ("logged", None)
    assert rec["text"] == "node token is <secret>"  # a secret setting's value is masked everywhere
    assert "tok-very-secret-1234" not in caplog.text and "alert P3 info" in caplog.text


def test_rate_limit_holds_repeats_back_but_never_p0(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with WebhookServer("slack").running() as slack:
        settings = env(monkeypatch, slack.url, NETTRACE_ALERT_MIN_INTERVAL_S="60")
        for _ in range(3):
            alert("P1", "Dagster run failed: deploy", "boom", settings)
            alert("P0", "HARDSTOP on", "floor", settings)
        assert sum(p["text"].startswith("[P1]") for p in slack.received) == 1
        assert sum(p["text"].startswith("[P0]") for p in slack.received) == 3
    assert [r["status"] for r in trail(home)].count("rate_limited") == 2


def test_a_bad_severity_or_settings_never_raise(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETTRACE_SIM_SEED", "six")  # load_settings would raise inside alert
    alert("P1", "x", "y")
    monkeypatch.delenv("NETTRACE_SIM_SEED")
    alert("P9", "unknown severity", "y")
    assert [r["severity"] for r in trail(home)] == ["P3"]


def test_hardstop_sends_p0_in_the_background(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.execution.risk import gate_from_settings

    with WebhookServer("slack").running() as slack:
        settings = env(monkeypatch, slack.url)
        slack.down = False
        t0 = time.monotonic()
        result = gate_from_settings(settings).set_hardstop(True, "operator test", by="test")
        assert result.on and time.monotonic() - t0 < 5
        deadline = time.monotonic() + 5
        while not slack.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert slack.received and slack.received[0]["text"] == "[P0] HARDSTOP on (main)\nby test: operator test"
    deadline = time.monotonic() + 3
    while not trail(home) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(r["severity"], r["status"]) for r in trail(home)] == [("P0", "sent")]


def test_hardstop_with_webhooks_down_still_latches(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nettrace_dagster.execution.risk import gate_from_settings

    settings = env(monkeypatch, "http://127.0.0.1:9/x", "http://127.0.0.1:9/y")
    assert gate_from_settings(settings).set_hardstop(True, "webhooks down", by="test").on
    deadline = time.monotonic() + 5
    while not trail(home) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.dumps(trail(home)).count('"failed"') == 1


def test_the_hardstop_command_delivers_its_p0_before_it_exits(home: Path) -> None:
    import os
    import subprocess
    import sys

    with WebhookServer("slack").running() as slack:
        env = {**os.environ, "NETTRACE_HOME": str(home), "SLACK_WEBHOOK_URL": slack.url}
        run = subprocess.run([sys.executable, "-c", "import sys; from nettrace_dagster.cli import main; "
                              "sys.exit(main())", "hardstop", "on", "--reason", "desk closed"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stdout.strip() == "HARDSTOP on" and run.stderr == ""
        assert [p["text"] for p in slack.received] == ["[P0] HARDSTOP on (main)\nby cli: desk closed"]
