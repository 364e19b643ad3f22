"""What counts as a passing test run (registered for the whole suite by tests/conftest.py).

- In CI (CI set) a skipped test is a failed one: CI has PostgreSQL running and `make test`
  installs the `peers` extra, so a skip there means a service or the vectorbt cross-check silently
  did not run. (An expected failure, `xfail`, is not a skip and is left alone.)
- A run that collects or selects no test exits 1, not pytest's 5: nothing to run is never a pass,
  so no wrapper can treat "5 means fine" and let a broken collection through.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from tests.pg import in_ci


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    # a module-level `pytest.importorskip` skips at collection, not in a test
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be skipped: {reason}"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("no tests ran: treated as a failure (exit 1)", red=True)
