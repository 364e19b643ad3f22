"""Nothing money- or secret-related can be changed by run config (issue 7, item 1).

Anyone with the Dagster UI's launchpad can launch `trading_tick` with any run config. These tests
replay that attack from outside, through Dagster's own machinery (in process and through the
`dagster job execute` CLI): with NETTRACE_LIVE_TRADING=0 and keys in the environment, a run config
that switches live trading on, points ccxt somewhere else, swaps the ledger or loosens the money
numbers must be refused before any step runs, and neither the (loopback) exchange nor the
"attacker's" host may see an order or the API key.
"""

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from nettrace_dagster.execution.resource import ExecutionResource
from nettrace_dagster.resources import MarketDataResource
from tests.fakes.binance import FakeBinance

KEY, SECRET = "launchpad-key-7f3a9c", "launchpad-secret-91c2e8"
ROOT = Path(__file__).resolve().parents[1]


class Recorder:
    """A loopback HTTP server standing in for a host the attacker controls: it records every
    request (headers and body included) and answers 404."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                recorder.requests.append({"method": self.command, "path": self.path,
                                          "headers": dict(self.headers), "body": body})
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_DELETE = do_PUT = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "Recorder":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def saw(self, text: str) -> bool:
        return any(text in json.dumps(r) for r in self.requests)


class Venue:
    """The loopback fake Binance the environment points at, with every signed request's headers
    kept (the fake itself keeps only method, path and parameters)."""

    def __init__(self, fake: FakeBinance) -> None:
        self.fake, self.signed_headers = fake, []
        check = fake.check_signed

        def spy(headers: Any, params: dict[str, str], raw: str) -> None:
            self.signed_headers.append(dict(headers))
            check(headers, params, raw)

        fake.check_signed = spy  # type: ignore[method-assign]

    def order_requests(self) -> int:
        return sum(1 for method, path, _ in self.fake.calls if path == "/api/v3/order" and method != "GET")

    def signed_requests(self) -> int:
        return sum(1 for _, _, params in self.fake.calls if "signature" in params) + len(self.signed_headers)

    def saw_key(self) -> bool:
        return any(KEY in json.dumps(h) for h in self.signed_headers) or any(
            KEY in json.dumps(p) for _, _, p in self.fake.calls)


@pytest.fixture
def venue() -> Iterator[Venue]:
    with FakeBinance(api_key=KEY, api_secret=SECRET, now=None) as fake:
        yield Venue(fake)


@pytest.fixture
def attacker() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


@pytest.fixture
def env(home: Path, venue: Venue, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Paper trading by the environment, with keys present: the state an attacker starts from."""
    values = {"NETTRACE_LIVE_TRADING": "0", "NETTRACE_EXCHANGE_API_KEY": KEY,
              "NETTRACE_EXCHANGE_API_SECRET": SECRET, "NETTRACE_MARKET_SOURCE": "sim",
              "NETTRACE_SIM_BARS": "1500", "NETTRACE_TRADER_CATCH_UP_BARS": "1440",
              "NETTRACE_CCXT_BASE_URL": venue.fake.base_url}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def definitions() -> dg.Definitions:
    from nettrace_dagster.definitions import build_definitions

    return build_definitions()


def materialize_candles(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    from nettrace_dagster.partitions import symbol_partitions

    job = defs.resolve_job_def("market_refresh")
    for symbol in symbol_partitions.get_partition_keys():
        assert job.execute_in_process(partition_key=symbol, instance=instance).success


def hostile_execution_configs(venue: Venue, attacker: Recorder, home: Path) -> list[tuple[str, dict[str, Any]]]:
    # The live switch is always paired with a loopback URL: before the fix it took effect, and
    # a test must never send anything to the real exchange.
    return [
        ("live switch", {"live_trading": True, "ccxt_base_url": venue.fake.base_url, "catch_up_bars": 1440}),
        ("live switch, orders to the attacker", {"live_trading": True, "ccxt_base_url": attacker.base_url}),
        ("ccxt URL", {"ccxt_base_url": attacker.base_url}),
        ("exchange id", {"ccxt_exchange": "kraken"}),
        ("ledger URL", {"ledger_url": f"sqlite:///{home / 'elsewhere.db'}"}),
        ("account", {"account": "live"}),
        ("initial capital", {"initial_capital_usd": 1_000_000.0}),
        ("fees", {"fee_rate": 0.0, "slippage_bps": 0.0}),
        ("minimum order", {"min_order_usd": 0.0}),
        ("audit folder", {"audit_dir": str(home / "nowhere")}),
        ("stale bars", {"catch_up_bars": 1_000_000}),
        ("rule numbers", {"rules": {"max_drawdown": 0.99}, "nettrace_rule_max_drawdown": "0.99"}),
    ]


def scaffold(home: Path, **hostile: Any) -> dict[str, Any]:
    """The launchpad scaffolds a resource's required entries with the values it shows; an
    attacker keeps those and changes the rest."""
    return {"ledger_url": f"sqlite:///{home / 'ledger.db'}", "audit_dir": str(home / "audit"), **hostile}


def assert_untouched(venue: Venue, attacker: Recorder) -> None:
    assert venue.order_requests() == 0
    assert venue.signed_requests() == 0 and not venue.saw_key()
    assert attacker.requests == [] and not attacker.saw(KEY) and not attacker.saw(SECRET)


def test_the_launchpad_cannot_switch_live_trading_on_or_move_money_settings(
        env: dict[str, str], home: Path, venue: Venue, attacker: Recorder) -> None:
    defs = definitions()
    instance = dg.DagsterInstance.ephemeral()
    materialize_candles(defs, instance)
    job = defs.resolve_job_def("trading_tick")
    for what, hostile in hostile_execution_configs(venue, attacker, home):
        with pytest.raises(dg.DagsterInvalidConfigError, match="execution"):
            job.execute_in_process(run_config={"resources": {"execution": {"config": scaffold(home, **hostile)}}},
                                   instance=instance)
        assert_untouched(venue, attacker), what
    assert not (home / "elsewhere.db").exists() and not (home / "nowhere").exists()
    # The same job without the hostile config trades on paper, and still never reaches the venue.
    assert job.execute_in_process(instance=instance).success
    assert_untouched(venue, attacker)


def test_materialize_with_hostile_resource_config_is_refused(
        env: dict[str, str], home: Path, venue: Venue, attacker: Recorder) -> None:
    from assets.market import candles
    from assets.portfolio import portfolio
    from nettrace_dagster.resources import build_resources
    from nettrace_dagster.settings import load_settings

    resources = build_resources(load_settings())
    instance = dg.DagsterInstance.ephemeral()
    assert dg.materialize([candles], partition_key="BTC-USDT", resources=resources, instance=instance).success
    hostile = {"resources": {"execution": {"config": scaffold(home, live_trading=True,
                                                               ccxt_base_url=attacker.base_url)}}}
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.materialize([candles, portfolio], selection=[portfolio], resources=resources, instance=instance,
                       run_config=hostile)
    assert_untouched(venue, attacker)


@pytest.mark.parametrize("hostile", [
    {"ccxt_base_url": "ATTACKER"}, {"ccxt_exchange": "kraken"}, {"source": "file"},
    {"import_dir": "/tmp"}, {"lake_dir": "/tmp"}, {"timeframe": "1h"}, {"gap_tolerance": 1.0},
], ids=lambda h: next(iter(h)))
def test_market_data_provenance_is_not_run_config(env: dict[str, str], home: Path, venue: Venue,
                                                  attacker: Recorder, hostile: dict[str, Any]) -> None:
    """Where prices come from decides what the trader buys: it is the environment's choice only."""
    hostile = {k: attacker.base_url if v == "ATTACKER" else v for k, v in hostile.items()}
    job = definitions().resolve_job_def("market_refresh")
    hostile = {"lake_dir": str(home / "lake"), **hostile}
    with pytest.raises(dg.DagsterInvalidConfigError, match="market"):
        job.execute_in_process(partition_key="BTC-USDT", instance=dg.DagsterInstance.ephemeral(),
                               run_config={"resources": {"market": {"config": hostile}}})
    assert attacker.requests == [] and venue.fake.calls == []


def test_only_harmless_knobs_are_run_config() -> None:
    """A new config field is a decision: it must be neither money, nor provenance, nor secret."""
    assert set(ExecutionResource.model_fields) == set()
    assert set(MarketDataResource.model_fields) == {"sim_seed", "sim_bars", "ccxt_history_days", "ccxt_max_retries"}


@dg.asset
def probe(market: MarketDataResource, execution: ExecutionResource) -> dict[str, Any]:
    """What a run's resources hold (module level: Dagster resolves the annotations by name)."""
    return {"lake": market.lake_dir, "source": market.source, "ledger": execution.ledger_url,
            "live": execution.live_trading, "account": execution.account}


def test_pinned_values_survive_dagster_s_per_run_copy(home: Path, tmp_path: Path) -> None:
    """Dagster rebuilds a resource from its config fields for every run; the pinned values (not
    config) must reach the run all the same, not fall back to whatever the environment says."""
    from nettrace_dagster.resources import build_resources
    from nettrace_dagster.settings import load_settings

    elsewhere = tmp_path / "elsewhere"
    settings = load_settings({"NETTRACE_HOME": str(elsewhere), "NETTRACE_MARKET_SOURCE": "file",
                              "NETTRACE_LIVE_TRADING": "1"})
    resources = {**build_resources(settings), "io_manager": dg.mem_io_manager}
    result = dg.materialize([probe], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.output_for_node("probe") == {
        "lake": str(elsewhere / "lake"), "source": "file", "ledger": f"sqlite:///{elsewhere / 'ledger.db'}",
        "live": True, "account": "live"}  # the environment (the `home` fixture) says otherwise on each


@pytest.mark.slow(seconds=9)
def test_live_switch_from_the_cli_launch_is_refused(env: dict[str, str], home: Path, venue: Venue,
                                                   attacker: Recorder, tmp_path: Path) -> None:
    """The real `dagster job execute -c config.yaml`, in its own process, as an operator would."""
    instance = dg.DagsterInstance.ephemeral()
    materialize_candles(definitions(), instance)
    (home / "dagster").mkdir(parents=True, exist_ok=True)  # the CLI wants an existing DAGSTER_HOME
    config = tmp_path / "hostile.yaml"
    config.write_text(yaml.safe_dump({"resources": {"execution": {"config": scaffold(
        home, live_trading=True, ccxt_base_url=attacker.base_url)}}}))
    cmd = [str(Path(sys.executable).parent / "dagster"), "job", "execute", "-m", "nettrace_dagster.definitions",
           "-a", "defs", "-j", "trading_tick", "-c", str(config)]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "unexpected config entr" in output.lower() or "error in config" in output.lower(), output[-3000:]
    assert KEY not in output and SECRET not in output
    assert_untouched(venue, attacker)
