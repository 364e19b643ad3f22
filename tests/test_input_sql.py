"""`nettrace sql` only reads (issue 7, item 11), and one damaged lake file breaks no query (item 12).

The attacks are the ones that worked: `COPY … TO` a lake file, the same COPY hidden in a WITH
(DuckDB parses that as a SELECT), and SQL smuggled in as data through
`json_execute_serialized_sql`. Each must exit 2 with one line and leave every byte as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from nettrace_dagster.cli import main
from nettrace_dagster.market.importer import import_candles
from nettrace_dagster.market.lake import Lake, LakeError
from nettrace_dagster.warehouse import Warehouse, WarehouseError, check_read_only

NETTRACE = Path(sys.executable).with_name("nettrace")
HEADER = "timestamp,open,high,low,close,volume\n"
ROWS = "1704067200,100,101,99,100.5,3\n1704067260,100.5,102,100,101,4\n1704067320,101,101.5,100.2,100.8,2\n"


@pytest.fixture
def lake(home: Path, tmp_path: Path) -> Lake:
    lake = Lake(home / "lake")
    csv = tmp_path / "in.csv"
    csv.write_text(HEADER + ROWS)
    for symbol in ("BTC-USDT", "ETH-USDT"):
        import_candles(csv, symbol, lake)
    (home / "audit").mkdir(parents=True)
    (home / "audit" / "deploys.jsonl").write_text('{"event": "start"}\n{"event": "done"}\n')
    return lake


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: a write anywhere shows up as a difference."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def one_line_error(err: str, command: str = "sql") -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"nettrace {command}: error: ") and "Traceback" not in err
    return lines[0]


def attacks(home: Path, outside: Path) -> list[str]:
    target = home / "lake" / "candles" / "BTC-USDT.parquet"
    serialized = duckdb.connect().execute(
        "SELECT json_serialize_sql(?)", [f"WITH a AS (COPY (SELECT 1) TO '{target}') SELECT 1"]).fetchall()[0][0]
    return [
        f"COPY (SELECT 1) TO '{target}'",
        f"COPY (SELECT 1) TO '{outside}'",
        f"WITH a AS (COPY (SELECT 1) TO '{target}') SELECT 1",
        f"SELECT * FROM (WITH a AS (COPY (SELECT 1) TO '{target}') SELECT 1)",
        "SELECT * FROM json_execute_serialized_sql('" + serialized.replace("'", "''") + "')",
        f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{target}'",
        f"SELECT 1; COPY (SELECT 1) TO '{target}'",
        f"EXPORT DATABASE '{outside.parent / 'export'}'",
        f"ATTACH '{outside.parent / 'x.db'}' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "CREATE TABLE t AS SELECT 1",
        "WITH a AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a",
        "PRAGMA version",
        "CALL pragma_version()",
        f"SELECT * FROM read_csv('{outside.parent / 'secret.csv'}')",  # outside the lake: refused too
    ]


def test_sql_refuses_every_write(lake: Lake, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outside = tmp_path / "out.csv"
    (tmp_path / "secret.csv").write_text("a\n1\n")
    before = snapshot(tmp_path)
    for query in attacks(home, outside):
        assert main(["sql", query]) == 2, query
        one_line_error(capsys.readouterr().err)
        assert snapshot(tmp_path) == before, f"{query!r} changed files"
    assert not outside.exists()


@pytest.mark.parametrize("query, rows", [
    ("SELECT symbol, count(*) AS n FROM candles GROUP BY 1 ORDER BY 1", 2),
    ("FROM candles WHERE symbol = 'BTC-USDT'", 3),
    ("WITH c AS (SELECT close FROM candles) SELECT max(close) FROM c", 1),
    ("DESCRIBE candles", 8),
    ("SHOW TABLES", 2),
    ("SUMMARIZE candles", 8),
    ("EXPLAIN SELECT * FROM candles", 1),
    ("SELECT event FROM audit_deploys", 2),
    ("SELECT * FROM read_parquet('ntlake://candles/*.parquet')", 6),
])
def test_reads_keep_working(lake: Lake, query: str, rows: int, capsys: pytest.CaptureFixture) -> None:
    assert main(["sql", query, "--json"]) == 0, capsys.readouterr().err
    assert len(json.loads(capsys.readouterr().out)) == rows


def test_the_connection_itself_cannot_write(lake: Lake, home: Path, tmp_path: Path) -> None:
    """Second line of defence: even SQL the check never sees cannot change a file."""
    before = snapshot(tmp_path)
    with Warehouse(home / "lake", home / "audit").connect() as con:
        for query in attacks(home, tmp_path / "out.csv")[:6] + [
                "COPY (SELECT 1) TO 'ntlake://candles/BTC-USDT.parquet'",
                "COPY (SELECT 1) TO 'ntlake://candles/NEW.parquet'",
                "SELECT * FROM read_text('ntlake://../../secret.csv')"]:
            with pytest.raises(duckdb.Error):
                con.execute(query).fetchall()
    assert snapshot(tmp_path) == before


def test_check_read_only_accepts_reads_only() -> None:
    check_read_only("select 1")
    check_read_only("explain analyze select 1")
    for sql in ("", "select 1; select 2", "/* c */ EXPLAIN ANALYZE COPY (SELECT 1) TO 'x'", "selec 1"):
        with pytest.raises(WarehouseError) as err:
            check_read_only(sql)
        assert "\n" not in str(err.value)


def test_issue_attack_through_the_real_cli(lake: Lake, home: Path) -> None:
    stored = home / "lake" / "candles" / "BTC-USDT.parquet"
    before = stored.read_bytes()
    env = {**os.environ, "NETTRACE_HOME": str(home)}
    proc = subprocess.run([str(NETTRACE), "sql", f"COPY (SELECT 1) TO '{stored}'"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "read-only" in one_line_error(proc.stderr)
    assert stored.read_bytes() == before
    proc = subprocess.run([str(NETTRACE), "sql", "SELECT count(*) AS n FROM candles", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and '"n": 6' in proc.stdout, proc.stderr
    # a value polars panics on when shown: the Rust panic text must not reach stderr either
    proc = subprocess.run([str(NETTRACE), "sql", "SELECT 'infinity'::TIMESTAMP AS t"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "panicked" not in proc.stderr
    assert "cannot show the result" in one_line_error(proc.stderr)


def test_every_symbol_view_names_the_symbol_symbol(lake: Lake, home: Path) -> None:
    """One column name for the symbol in every view: candles and regimes say `symbol` (from the
    file name, which wins over a stale column of that name inside a file), never `partition`."""
    import polars as pl

    (home / "lake" / "regimes").mkdir()
    for symbol in ("BTC-USDT", "ETH-USDT"):
        pl.DataFrame({"timestamp": [1, 2], "regime": ["BULL", "BEAR"], "symbol": ["stale", "stale"]}).write_parquet(
            home / "lake" / "regimes" / f"{symbol}.parquet")
    wh = Warehouse(home / "lake", home / "audit")
    for view in ("candles", "regimes"):
        columns = wh.query(f"DESCRIBE {view}")["column_name"].to_list()
        assert columns[0] == "symbol" and columns.count("symbol") == 1 and "partition" not in columns, columns
    joined = wh.query("SELECT c.symbol, count(*) AS n FROM candles c JOIN regimes r ON r.symbol = c.symbol "
                      "GROUP BY 1 ORDER BY 1")
    assert joined.rows() == [("BTC-USDT", 6), ("ETH-USDT", 6)]


def test_truncated_partition_is_skipped_with_a_warning(lake: Lake, home: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    bad = home / "lake" / "candles" / "ETH-USDT.parquet"
    bad.write_bytes(bad.read_bytes()[:200])  # a torn copy: the footer is gone
    assert main(["sql", "SELECT symbol, count(*) AS n FROM candles GROUP BY 1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"BTC-USDT"' in out and "ETH-USDT" not in out
    assert err.count("\n") == 1 and "warning" in err and str(bad) in err and "Traceback" not in err
    warnings: list[str] = []
    Warehouse(home / "lake", home / "audit", warn=warnings.append).query("SELECT 1")
    assert len(warnings) == 1 and str(bad) in warnings[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "folder"])
def test_damaged_partition_never_breaks_the_view(lake: Lake, home: Path, damage: str) -> None:
    bad = home / "lake" / "candles" / "ETH-USDT.parquet"
    data = bad.read_bytes()
    bad.unlink()
    if damage == "folder":
        bad.mkdir()
    else:
        bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"PAR1" + os.urandom(300),
                         "empty": b""}[damage])
    warnings: list[str] = []
    df = Warehouse(home / "lake", home / "audit", warn=warnings.append).query("SELECT DISTINCT symbol FROM candles")
    assert df["symbol"].to_list() == ["BTC-USDT"] and len(warnings) == 1


def test_damaged_stored_file_is_one_line_and_kept(lake: Lake, home: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    bad = home / "lake" / "candles" / "ETH-USDT.parquet"
    bad.write_bytes(bad.read_bytes()[:200])
    torn = bad.read_bytes()
    with pytest.raises(LakeError, match="ETH-USDT.parquet is unreadable"):
        lake.read_candles("ETH-USDT")
    (tmp_path / "more.csv").write_text(HEADER + "1704067380,100.8,101,100,100.9,1\n")
    assert main(["import", str(tmp_path / "more.csv"), "--symbol", "ETH-USDT"]) == 2
    assert str(bad) in one_line_error(capsys.readouterr().err, "import")
    assert bad.read_bytes() == torn  # not overwritten with "the file only"


def test_query_errors_are_one_line(lake: Lake, capsys: pytest.CaptureFixture) -> None:
    for query in ("SELECT * FROM nope", "SELECT union_value(k := 1) AS u", "SELECT INTERVAL 1000000 YEAR AS i"):
        assert main(["sql", query]) == 2
        one_line_error(capsys.readouterr().err)
