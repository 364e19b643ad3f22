"""Audit logs: append-only lines that concurrent processes never interleave, readable by DuckDB."""

import logging
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest

from nettrace_dagster.audit import append_audit, read_audit
from nettrace_dagster.coordinator.log import CONFLICT_LOG, AuditSink
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


def duckdb_records(audit_dir: Path, log: str) -> list[dict]:
    """What the warehouse's audit view returns (rows a torn line left all-NULL aside)."""
    frame = Warehouse(audit_dir / "lake", audit_dir).query(f"SELECT * FROM audit_{log} WHERE ts IS NOT NULL")
    return frame.to_dicts()


def test_a_torn_line_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    append_audit(tmp_path, "alerts", {"msg": "before"})
    with (tmp_path / "alerts.jsonl").open("ab") as fh:  # a writer killed mid-record: no newline after it
        fh.write(b'{"ts":"2026-11-25T00:00:00+00:00","msg":"tor')
    append_audit(tmp_path, "alerts", {"msg": "after"})
    append_audit(tmp_path, "alerts", {"msg": "later"})
    assert [r["msg"] for r in read_audit(tmp_path, "alerts")] == ["before", "after", "later"]
    assert [r["msg"] for r in duckdb_records(tmp_path, "alerts")] == ["before", "after", "later"]


def test_logs_written_before_the_leading_newline_still_read_whole(tmp_path: Path) -> None:
    (tmp_path / "alerts.jsonl").write_text('{"ts":"2026-01-01T00:00:00+00:00","msg":"old"}\n')
    append_audit(tmp_path, "alerts", {"msg": "new"})
    assert [r["msg"] for r in read_audit(tmp_path, "alerts")] == ["old", "new"]
    assert [r["msg"] for r in duckdb_records(tmp_path, "alerts")] == ["old", "new"]


def _append_forever(audit_dir: str, log: str) -> None:
    pad = "x" * (4 << 20)  # long records: SIGKILL lands mid-write (the kernel stops between pages)
    while True:
        append_audit(Path(audit_dir), log, {"pad": pad})


def test_a_writer_killed_mid_record_loses_only_its_own_record(tmp_path: Path) -> None:
    """Real processes: SIGKILL a writer in a loop of long appends until it has torn a line, then
    the next record (another process's) must still be read."""
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(7)
    torn = 0
    for attempt in range(80):
        log = f"killed{attempt}"
        path = tmp_path / f"{log}.jsonl"
        writer = ctx.Process(target=_append_forever, args=(str(tmp_path), log))
        writer.start()
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(rng.random() * 0.02)
        os.kill(writer.pid, signal.SIGKILL)
        writer.join(10)
        with path.open("rb") as fh:  # killed before its first byte: empty, and not torn
            tore = fh.seek(0, os.SEEK_END) > 0 and os.pread(fh.fileno(), 1, fh.tell() - 1) != b"\n"
        torn += tore
        append_audit(tmp_path, log, {"msg": "after the crash"})
        assert [r["msg"] for r in read_audit(tmp_path, log) if "msg" in r] == ["after the crash"], attempt
        if tore:  # DuckDB takes ~0.5 s over 4 MB lines: ask it where it matters
            assert [r["msg"] for r in duckdb_records(tmp_path, log) if r.get("msg")] == ["after the crash"]
        path.unlink()  # 4 MB records: keep the disk small
        if torn >= 2:
            break
    assert torn >= 2, "no writer was killed mid-record: the test proved nothing"


def test_an_unwritable_audit_log_never_raises_into_the_caller(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "audit"
    blocked.write_text("a file where the audit folder should be")
    sink = AuditSink(blocked)
    with caplog.at_level(logging.ERROR, logger="nettrace_dagster.coordinator.log"):
        assert sink.record("reservation", amount=12.5, owner="order:x") is False
        assert sink.record("release", reservation_id=1) is False
    assert sink.failures == 2 and not sink.healthy and "release" not in (sink.last_error or "x")
    assert len(caplog.records) == 2 and "audit unwritable" in caplog.records[0].getMessage()
    assert "12.5" not in caplog.text  # the error, not the record's fields

    ok = AuditSink(tmp_path / "fine")
    assert ok.record("reservation", amount=1.0) is True and ok.healthy
    assert [r["decision"] for r in read_audit(tmp_path / "fine", CONFLICT_LOG)] == ["reservation"]
    assert AuditSink(None).record("anything") is True  # no folder: nothing to write, nothing lost
