"""Where the time goes: `nettrace demo` and one trading tick, under pyinstrument.

    python benchmarks/profile_demo.py                 # demo, paper tick and live (ccxt) tick
    python benchmarks/profile_demo.py --only tick     # the ticks only (seconds)
    python benchmarks/profile_demo.py --html out/     # also write pyinstrument's HTML reports

Each part runs in a fresh temporary NETTRACE_HOME. Printed per part: the wall time, the CPU time,
the load average (figures move with other processes on the machine), the call tree down to 3 %
of the time, and the top functions by their own time. Findings and what was done about them:
docs/benchmarks.md ("Profiles").

The live tick talks to the loopback fake Binance of the test suite (tests/fakes), so this needs
the repository checkout, not just the installed package.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def profile(name: str, fn: Callable[[], Any], html: Path | None) -> None:
    load = os.getloadavg()[0]
    profiler = Profiler(interval=0.001)
    cpu0, t0 = time.process_time(), time.perf_counter()
    profiler.start()
    try:
        fn()
    finally:
        profiler.stop()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"\n=== {name}: {wall:.2f} s wall, {cpu:.2f} s CPU (this process), load average {load:.1f} ===")
    print(profiler.output_text(unicode=False, color=False, show_all=False, time="seconds",
                               processor_options={"filter_threshold": 0.03}))
    print(f"top functions by own time ({name}):")
    for (func, where), seconds in own_times(profiler)[:12]:
        print(f"  {seconds:7.3f} s  {seconds / wall:5.1%}  {func}  {where}")
    if html is not None:
        html.mkdir(parents=True, exist_ok=True)
        (html / f"{name.replace(' ', '_')}.html").write_text(profiler.output_html())


def own_times(profiler: Profiler) -> list[tuple[tuple[str, str], float]]:
    """Self time per function over the whole tree (what the time is spent *in*): pyinstrument
    keeps it in synthetic "[self]" leaves, counted here for the function above them."""
    session = profiler.last_session
    root = session.root_frame() if session else None
    totals: dict[tuple[str, str], float] = defaultdict(float)
    stack = [root] if root is not None else []
    while stack:
        frame = stack.pop()
        stack.extend(c for c in frame.children if not c.is_synthetic)
        if frame.is_synthetic:
            continue
        where = f"{frame.file_path_short or ''}:{frame.line_no}"
        totals[(f"{frame.class_name + '.' if frame.class_name else ''}{frame.function}", where)] += \
            frame.total_self_time
    return sorted(totals.items(), key=lambda kv: -kv[1])


def demo() -> None:
    from nettrace_dagster.demo import run_demo
    from nettrace_dagster.settings import load_settings

    with tempfile.TemporaryDirectory(prefix="nettrace-profile-") as home:
        os.environ["NETTRACE_HOME"] = home
        os.environ["DAGSTER_HOME"] = str(Path(home) / "dagster")
        report = run_demo(load_settings())
        assert report.ok, report.failed


def trader_for(tmp: Path, broker_of: Callable[[Any, Any], Any]) -> Any:
    from nettrace_dagster.coordinator.core import Coordinator
    from nettrace_dagster.execution.engine import ExecutionEngine
    from nettrace_dagster.ledger.db import Ledger
    from nettrace_dagster.trading.trader import Trader

    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    coord = Coordinator(ledger, audit_dir=tmp / "audit")
    return Trader(ExecutionEngine(ledger, broker_of(ledger, coord), audit_dir=tmp / "audit"), coord,
                  catch_up_bars=60)


def ticks(html: Path | None) -> None:
    """A trading tick: 60 new 1-minute bars of 2 symbols after 3,000 of history, 3 strategies."""
    from nettrace_dagster.execution.ccxt_broker import CcxtBroker
    from nettrace_dagster.execution.paper import PaperBroker
    from nettrace_dagster.market.sim import simulate
    from tests.fakes.binance import FakeBinance

    history = {s: simulate(s, 3060) for s in ("BTC-USDT", "ETH-USDT")}
    before = {s: df.head(3000) for s, df in history.items()}
    with tempfile.TemporaryDirectory(prefix="nettrace-profile-") as tmp:
        paper = trader_for(Path(tmp), lambda ledger, _coord: PaperBroker(ledger))
        paper.tick(before)  # compiles the strategies' numba kernels; a running process has done so
        profile("paper tick", lambda: paper.tick(history), html)
    with tempfile.TemporaryDirectory(prefix="nettrace-profile-") as tmp, FakeBinance(api_key="k", api_secret="s") as fake:
        live = trader_for(Path(tmp), lambda _ledger, coord: CcxtBroker(
            "binance", "k", "s", live_trading=True, base_url=fake.base_url, api_budget=coord.api_call))
        live.tick(before)
        # Ticks come a minute apart: let ccxt's own token bucket refill as it would between them
        # (back to back, its throttle sleeps ~0.8 s for the weight-40 fetchOpenOrders of the last tick).
        time.sleep(float(os.environ.get("PROFILE_TICK_GAP_S", "3")))
        profile("live tick (ccxt, loopback fake Binance)", lambda: live.tick(history), html)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("demo", "tick"), help="profile one part")
    parser.add_argument("--html", type=Path, help="folder for pyinstrument's HTML reports")
    args = parser.parse_args()
    print(f"machine: {os.uname().machine}, {os.cpu_count()} CPU(s); Python {sys.version.split()[0]}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.only in (None, "tick"):
        ticks(args.html)
    if args.only in (None, "demo"):
        profile("nettrace demo", demo, args.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
