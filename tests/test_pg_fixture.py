"""The test-run rules themselves: the PostgreSQL fixture skips only when the server is absent and
CI is not set, a skip in CI fails, and a run with no tests fails (tests/pg.py, tests/ci.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

import tests.pg as pg

pytest_plugins = ("pytester",)

CONFTEST = 'pytest_plugins = ("tests.pg", "tests.ci")\n'
USES_PG = """
def test_needs_postgres(pg_url):
    assert pg_url.startswith("postgresql://")
"""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "PORT", closed_port())


def test_absent_server_skips_with_the_reason_outside_ci(pytester: pytest.Pytester, no_server: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(USES_PG)
    result = pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*PostgreSQL is not answering on 127.0.0.1:*"])
    assert result.ret == 0


def test_absent_server_fails_in_ci(pytester: pytest.Pytester, no_server: None,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(USES_PG)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not answering*CI runs the PostgreSQL tests for real*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_any_skip_fails_in_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("""
import pytest

def test_optional_peer():
    pytest.importorskip("no_such_module_for_nettrace")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
""")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, xfailed=1)
    result.stdout.fnmatch_lines(["*skipped in CI*no_such_module_for_nettrace*"])


def test_a_run_with_no_tests_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_one():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-k", "no_such_test")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*no tests ran: treated as a failure*"])


def test_role_falls_back_to_root_and_the_database_is_dropped(monkeypatch: pytest.MonkeyPatch,
                                                              pg_database: pg.ScratchDatabase) -> None:
    monkeypatch.setenv("PGUSER", "no_such_role_for_nettrace")
    assert pg.candidate_users() == ["no_such_role_for_nettrace", "root"]
    with pg.scratch_database("nettrace_fixture_test") as db:
        assert db.user == "root"
        with db.connect() as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == db.name
    admin, _ = pg.connect_admin()
    with admin:
        left = admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (db.name,)).fetchone()[0]
    assert left == 0


def test_a_killed_sessions_database_is_dropped_by_the_next(pg_database: pg.ScratchDatabase) -> None:
    admin, _ = pg.connect_admin()
    with admin:
        dead_pid = 2**22 + 12345  # above the largest pid Linux can give out (2**22)
        orphan = f"nettrace_orphan_test_{dead_pid}_deadbeef"
        admin.execute(f'CREATE DATABASE "{orphan}"')
        with pg.scratch_database("nettrace_orphan_test") as db:
            names = {r[0] for r in admin.execute("SELECT datname FROM pg_database").fetchall()}
            assert db.name in names and orphan not in names


def test_a_skip_fails_and_no_tests_exit_1_on_xdist_workers(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite runs on xdist workers (pyproject addopts): tests/ci.py's hooks run there, and
    their verdicts (a skip in CI is a failure, no tests is exit 1) must reach the controller."""
    monkeypatch.setenv("CI", "true")
    root = str(Path(__file__).resolve().parents[1])  # the subprocess imports tests.ci from here
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skipping="""
import pytest

def test_optional_peer():
    pytest.importorskip("no_such_module_for_nettrace")

def test_plain():
    pass
""")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*skipped in CI*no_such_module_for_nettrace*"])
    none = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "-k", "no_such_test")
    assert none.ret == pytest.ExitCode.TESTS_FAILED
    none.stdout.fnmatch_lines(["*no tests ran: treated as a failure*"])
