"""`nettrace backup` / `nettrace restore`: a home restored into an empty one equals the original
(ledger rows table by table, audit lines, lake bytes), also when the backup was taken while another
process traded; corrupt, partial and misplaced restores are refused in one line, changing nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import create_engine, inspect, text

from nettrace_dagster.audit import append_audit, read_audit
from nettrace_dagster.backup import MANIFEST, backup, restore
from nettrace_dagster.cli import main
from nettrace_dagster.execution.engine import ExecutionEngine
from nettrace_dagster.execution.intents import Intent
from nettrace_dagster.execution.paper import PaperBroker
from nettrace_dagster.ledger.db import Ledger
from nettrace_dagster.market.lake import write_parquet_atomic
from nettrace_dagster.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def settings_for(home: Path, ledger_url: str = "") -> Settings:
    return load_settings({"NETTRACE_HOME": str(home), "NETTRACE_LEDGER_URL": ledger_url})


def fill_home(settings: Settings) -> None:
    """Some of everything: orders, fills, positions, a HARDSTOP flag, audit logs, lake files."""
    ledger = Ledger(settings.ledger_url)
    engine = ExecutionEngine(ledger, PaperBroker(ledger), audit_dir=settings.audit_dir)
    for i in range(4):
        assert engine.submit(Intent("s", "BTC-USDT", "entry", 100.0 + i, f"k{i}", 0.9, 3)).status == "filled"
        assert engine.submit(Intent("s", "BTC-USDT", "exit", 102.0 + i, f"k{i}")).status == "filled"
    engine.submit(Intent("s", "ETH-USDT", "entry", 50.0, "open", 0.9, 3))
    engine.set_hardstop(True, "backup test")
    append_audit(settings.audit_dir, "deploy_history", {"event": "canary", "release": "r1"})
    write_parquet_atomic(pl.DataFrame({"x": [1, 2, 3]}), settings.lake_dir / "candles" / "BTC-USDT.parquet")
    write_parquet_atomic(pl.DataFrame({"y": [0.5]}), settings.lake_dir / "market_summary.parquet")
    ledger.dispose()


def dump(url: str) -> dict[str, list[dict]]:
    """Every row of every ledger table (as column → value), in a stable order."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        tables = sorted(inspect(conn).get_table_names())
        out = {}
        for t in tables:
            n = len(inspect(conn).get_columns(t))
            order = ", ".join(str(i) for i in range(1, n + 1))
            out[t] = [dict(r._mapping) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY {order}'))]
    engine.dispose()
    return out


def audit_lines(settings: Settings) -> dict[str, list[str]]:
    return {p.name: [ln for ln in p.read_text().splitlines() if ln.strip()]
            for p in sorted(settings.audit_dir.glob("*.jsonl"))}


def lake_bytes(settings: Settings) -> dict[str, bytes]:
    return {p.relative_to(settings.lake_dir).as_posix(): p.read_bytes()
            for p in sorted(settings.lake_dir.rglob("*")) if p.is_file()}


def test_a_restored_home_equals_the_original(tmp_path: Path) -> None:
    src = settings_for(tmp_path / "src")
    fill_home(src)
    manifest = backup(src, tmp_path / "bk")
    assert manifest["ledger"]["kind"] == "sqlite" and manifest["ledger"]["rows"]["orders"] == 9
    dst = settings_for(tmp_path / "dst")
    result = restore(dst, tmp_path / "bk")
    assert result["rows"]["fills"] == 9 and result["outbox_rows_already_in_audit"] == 0
    original, restored = dump(src.ledger_url), dump(dst.ledger_url)
    assert original["orders"] and original["fills"] and original["flags"]
    assert restored == original
    assert audit_lines(dst) == audit_lines(src) and "deploy_history.jsonl" in audit_lines(dst)
    assert lake_bytes(dst) == lake_bytes(src) and len(lake_bytes(src)) == 2
    status = ExecutionEngine(Ledger(dst.ledger_url), PaperBroker(Ledger(dst.ledger_url))).status()
    assert status["hardstop"]["on"] and len(status["positions"]) == 1


def run_cli(monkeypatch: pytest.MonkeyPatch, home: Path, *argv: str) -> int:
    monkeypatch.setenv("NETTRACE_HOME", str(home))
    monkeypatch.delenv("NETTRACE_LEDGER_URL", raising=False)
    return main(list(argv))


def test_restore_refuses_corrupt_partial_and_occupied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = settings_for(tmp_path / "src")
    fill_home(src)
    assert run_cli(monkeypatch, src.home, "backup", str(tmp_path / "bk"), "--json") == 0
    assert json.loads(capsys.readouterr().out)["rows"]["fills"] == 9
    assert run_cli(monkeypatch, src.home, "backup", str(tmp_path / "bk")) == 2  # never into a used folder
    assert "not an empty folder" in capsys.readouterr().err

    def refused(backup_dir: Path, home: Path, words: str, *extra: str) -> None:
        before = sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) if home.exists() else []
        assert run_cli(monkeypatch, home, "restore", str(backup_dir), *extra) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err
        after = sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) if home.exists() else []
        assert after == before  # nothing written

    empty = tmp_path / "empty"
    lake_file = tmp_path / "bk" / "lake" / "candles" / "BTC-USDT.parquet"
    good = lake_file.read_bytes()
    lake_file.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one flipped bit
    refused(tmp_path / "bk", empty, "backup is corrupt: lake/candles/BTC-USDT.parquet does not match its SHA-256")
    lake_file.write_bytes(good[:10])
    refused(tmp_path / "bk", empty, "has 10 bytes, the manifest says")
    lake_file.unlink()
    refused(tmp_path / "bk", empty, "backup is incomplete: lake/candles/BTC-USDT.parquet is missing")
    lake_file.write_bytes(good)
    manifest = (tmp_path / "bk" / MANIFEST).read_bytes()
    (tmp_path / "bk" / MANIFEST).unlink()  # what an interrupted backup looks like
    refused(tmp_path / "bk", empty, "not a complete NetTrace backup")
    (tmp_path / "bk" / MANIFEST).write_bytes(manifest)

    refused(tmp_path / "bk", src.home, "restore overwrites it only with --force")
    write_parquet_atomic(pl.DataFrame({"x": [9]}), src.lake_dir / "extra" / "new.parquet")
    assert run_cli(monkeypatch, src.home, "restore", str(tmp_path / "bk"), "--force") == 0
    assert not (src.lake_dir / "extra").exists()  # the lake is the backup's, wholly


def backup_while_trading(live: Settings, restored: Settings, tmp: Path) -> None:
    """Back up `live` while another process trades on it, restore into `restored`, and check
    the restored ledger is one consistent moment of the live one."""
    Ledger(live.ledger_url).dispose()
    writer = subprocess.Popen([sys.executable, "-m", "tests.ops_writer", str(live.home), "1.0", live.ledger_url],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        manifest = backup(live, tmp / "bk")
    finally:
        trips = int(writer.communicate(timeout=60)[0].split()[-1])
    assert writer.returncode == 0
    restore(restored, tmp / "bk")
    got, final = dump(restored.ledger_url), dump(live.ledger_url)
    taken = manifest["ledger"]["rows"]["orders"]
    assert 3 * 2 <= taken < 2 * trips, (taken, trips)  # mid-stream: some orders, not all of them
    # The snapshot is a prefix of what the live ledger went on to hold.
    final_orders = {r["client_order_id"] for r in final["orders"]}
    assert got["orders"] and final_orders
    assert all(r["client_order_id"] in final_orders for r in got["orders"])
    # Internally consistent: each order's fills add up to its filled quantity; the position is
    # what the fills leave; no fill without its order.
    fills_by_order: dict[int, float] = {}
    for f in got["fills"]:
        fills_by_order[f["order_id"]] = fills_by_order.get(f["order_id"], 0.0) + f["qty"]
    orders = {r["id"]: r for r in got["orders"]}
    assert set(fills_by_order) <= set(orders)
    assert all(abs(fills_by_order.get(oid, 0.0) - o["filled_qty"]) < 1e-12 for oid, o in orders.items())
    restored_ledger = Ledger(restored.ledger_url)
    held = ExecutionEngine(restored_ledger, PaperBroker(restored_ledger)).status()["positions"]
    restored_ledger.dispose()
    bought = sum(o["filled_qty"] - o["fee_base"] for o in orders.values() if o["side"] == "buy")
    sold = sum(o["filled_qty"] for o in orders.values() if o["side"] == "sell")
    assert sum(p["qty"] for p in held) == pytest.approx(bought - sold, abs=1e-9)
    # Every audit record of the snapshot exactly once: in the log, or still in the outbox.
    logged = [json.dumps({k: v for k, v in r.items() if k != "outbox_id"}, sort_keys=True)
              for p in restored.audit_dir.glob("*.jsonl") for r in read_audit(restored.audit_dir, p.stem)
              if "outbox_id" in r]
    waiting = [json.dumps(json.loads(r["record"]), sort_keys=True) for r in got["audit_outbox"]]
    assert logged and len(set(logged)) == len(logged) and not set(logged) & set(waiting)
    assert pl.read_parquet(restored.lake_dir / "writer" / "trips.parquet").height >= 3


def test_a_backup_taken_while_another_process_trades_restores_consistent(tmp_path: Path) -> None:
    backup_while_trading(settings_for(tmp_path / "live"), settings_for(tmp_path / "restored"), tmp_path)


@pytest.mark.slow(seconds=5)
def test_a_postgres_backup_taken_while_another_process_trades(pg_url: str, pg_database, tmp_path: Path) -> None:
    from nettrace_dagster.backup import _forget

    with pg_database.schema("restored") as schema:
        restored = settings_for(tmp_path / "restored", pg_database.url(schema))
        backup_while_trading(settings_for(tmp_path / "live", pg_url), restored, tmp_path)
        _forget(restored)


def test_postgres_round_trip_into_another_schema(pg_url: str, pg_database, tmp_path: Path) -> None:
    src = settings_for(tmp_path / "src", pg_url)
    fill_home(src)
    manifest = backup(src, tmp_path / "bk")
    assert manifest["ledger"]["kind"] == "postgresql" and manifest["ledger"]["rows"]["fills"] == 9
    with pg_database.schema("restored") as schema:
        dst = settings_for(tmp_path / "dst", pg_database.url(schema))
        result = restore(dst, tmp_path / "bk")
        assert result["revision"] == manifest["ledger"]["revision"]
        assert dump(dst.ledger_url) == dump(src.ledger_url)
        assert audit_lines(dst) == audit_lines(src) and lake_bytes(dst) == lake_bytes(src)
        ledger = Ledger(dst.ledger_url)  # ids continue after the restored rows
        engine = ExecutionEngine(ledger, PaperBroker(ledger))
        engine.set_hardstop(False, "restored", reset_peak=True)
        after = engine.submit(Intent("s", "SOL-USDT", "entry", 20.0, "after", 0.9, 3),
                              {"ETH-USDT": 50.0, "SOL-USDT": 20.0})
        assert after.status == "filled", after.reasons
        ledger.dispose()
        with pytest.raises(Exception, match="only with --force"):
            restore(dst, tmp_path / "bk")
        from nettrace_dagster.backup import _forget

        _forget(dst)


def test_an_outbox_record_already_appended_is_restored_once(tmp_path: Path) -> None:
    """The race the backup order leaves: a record flushed to its log after the ledger snapshot is
    in the copied log *and* in the snapshot's outbox. Restore keeps it once; a record only in the
    outbox stays there (to be appended by the next flush)."""
    from nettrace_dagster.ledger.models import AuditOutbox

    src = settings_for(tmp_path / "src")
    ledger = Ledger(src.ledger_url)
    records = [{"ts": "2026-12-01T10:00:00.000001+00:00", "decision": "entry", "n": i} for i in range(2)]
    with ledger.tx() as s:
        for r in records:
            s.add(AuditOutbox(log="execution_log", record=json.dumps(r), created_at=1.0))
    backup(src, tmp_path / "bk")
    append_audit(tmp_path / "bk" / "audit", "execution_log", {**records[0], "outbox_id": 1})  # flushed meanwhile
    manifest = json.loads((tmp_path / "bk" / MANIFEST).read_text())  # re-seal the edited backup
    from nettrace_dagster.backup import _entry

    manifest["files"].append(_entry(tmp_path / "bk", tmp_path / "bk" / "audit" / "execution_log.jsonl"))
    manifest["audit_lines"]["execution_log"] = 1
    (tmp_path / "bk" / MANIFEST).write_text(json.dumps(manifest))
    dst = settings_for(tmp_path / "dst")
    result = restore(dst, tmp_path / "bk")
    assert result["outbox_rows_already_in_audit"] == 1
    left = [json.loads(r["record"]) for r in dump(dst.ledger_url)["audit_outbox"]]
    assert left == [records[1]] and len(list(read_audit(dst.audit_dir, "execution_log"))) == 1
    ledger.dispose()
