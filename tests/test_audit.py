"""Audit logs: append-only lines that concurrent processes never interleave, readable by DuckDB."""

import multiprocessing
from pathlib import Path

from nettrace_dagster.audit import append_audit, read_audit
from nettrace_dagster.warehouse import Warehouse


def _writer(audit_dir: str, worker: int) -> None:
    for i in range(200):
        append_audit(Path(audit_dir), "conflict_log", {"worker": worker, "i": i, "pad": "x" * 300})


def test_concurrent_writers_never_interleave_and_duckdb_reads_them(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    records = list(read_audit(tmp_path, "conflict_log"))
    assert len(records) == 800  # every line whole: a torn line would not parse
    assert sorted((r["worker"], r["i"]) for r in records) == [(w, i) for w in range(4) for i in range(200)]
    counts = Warehouse(tmp_path / "lake", tmp_path).query(
        "SELECT worker, count(*) AS n FROM audit_conflict_log GROUP BY 1 ORDER BY 1")
    assert counts["n"].to_list() == [200, 200, 200, 200]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    append_audit(tmp_path, "alerts", {"msg": "one"})
    with (tmp_path / "alerts.jsonl").open("a") as fh:
        fh.write('{"ts": "2026-11-25", "msg": "tw')  # a crash mid-line
    assert [r["msg"] for r in read_audit(tmp_path, "alerts")] == ["one"]
