"""An execution node: `nettrace node --region R --port P`, an HTTP service that runs the trading
loop for the release it was given.

- `GET /health`: alive, and whether its trading loop is healthy (503 when the last tick failed).
- `GET /telemetry`: release id, last tick time, positions, P&L, equity — what the controller's
  health gates read (freshness, reconciliation with the ledger) and what divergence is judged on.
- `POST /release` `{"release": ID}` with `Authorization: Bearer <NETTRACE_NODE_TOKEN>`: load a
  release from the ledger (its content re-hashed against its id, file strategies against their
  code hash). Refused (401) without the token, compared in constant time; refused (503) when the
  node itself has no token, so an unconfigured node cannot be driven by anyone.

Only the primary region (`ewr`) trades the account (paper or live, as the execution layer's
settings say) and holds its driver lease, so the `trading_tick` sensor stands down while it runs;
every other region runs the same release on paper in its own ledger account (`paper-<region>`).
The trading loop runs on a thread beside the server, through `Trader` and the execution engine
(one tick per account at a time: the trader's own process lock).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
import traceback
from datetime import UTC, datetime
from typing import Any

import polars as pl

from nettrace_dagster.deploy import PRIMARY, REGIONS, ROLES, DeployError
from nettrace_dagster.deploy.positions import release_lease, renew_lease
from nettrace_dagster.deploy.release import ReleaseInfo, canonical, file_code_hash, get_release, release_id_of
from nettrace_dagster.settings import Settings, load_settings

log = logging.getLogger("nettrace.node")
SIM_WINDOW_BARS = 600  # bars a node keeps per symbol on the simulator (signals need a few hundred)
NODE_CATCH_UP_BARS = 60  # a fresh node does not replay a day of bars on its first tick


def account_of(region: str, settings: Settings) -> str:
    if region == PRIMARY:
        from nettrace_dagster.execution.risk import ACCOUNT_OF_MODE, trading_mode

        return ACCOUNT_OF_MODE[trading_mode(settings)]
    return f"paper-{region}"


class NodeState:
    """The node's release, its trading loop and what it last saw; shared by the server and the loop."""

    def __init__(self, region: str, settings: Settings, token: str) -> None:
        if region not in REGIONS:
            raise DeployError(f"unknown region {region!r}; one of {', '.join(REGIONS)}")
        self.region, self.settings, self.token = region, settings, token
        self.role = ROLES[region]
        self.account = account_of(region, settings)
        self.release: ReleaseInfo | None = None
        self.loaded_at: float | None = None
        self.last_tick: float | None = None
        self.ticks = 0
        self.error = ""
        self.telemetry: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self._trader: Any = None
        self._candles: dict[str, pl.DataFrame] = {}
        self._sim: Any = None
        self.thread = threading.Thread(target=self._loop, name=f"node-{region}", daemon=True)

    # --- release ------------------------------------------------------------------------------
    def load(self, release_id: str) -> ReleaseInfo:
        from nettrace_dagster.ledger.db import ledger_of
        from nettrace_dagster.strategies.registry import STRATEGIES, load_strategy_file

        info = get_release(ledger_of(self.settings), release_id)
        if release_id_of(info.content) != release_id:
            raise DeployError(f"release {release_id}: its stored content does not hash to its id")
        for name, spec in info.strategies.items():
            if spec["kind"] == "file":
                if file_code_hash(spec["path"]) != spec["code_sha256"]:
                    raise DeployError(f"release {release_id}: {spec['path']} changed since the release was made")
                STRATEGIES[name] = type(load_strategy_file(spec["path"]))  # this process's registry only
            elif name not in STRATEGIES:
                raise DeployError(f"release {release_id}: unknown built-in strategy {name!r}")
        with self.lock:
            self.release, self.loaded_at, self._trader, self.error = info, time.time(), None, ""
        self.wake.set()
        return info

    # --- the trading loop ---------------------------------------------------------------------
    def _trader_for(self, info: ReleaseInfo) -> Any:
        from pathlib import Path

        from nettrace_dagster.coordinator.core import Coordinator
        from nettrace_dagster.execution.costs import CostModel
        from nettrace_dagster.execution.engine import ExecutionEngine
        from nettrace_dagster.execution.paper import PaperBroker
        from nettrace_dagster.ledger.db import ledger_of
        from nettrace_dagster.rules import load_rules
        from nettrace_dagster.trading.trader import Trader

        strategies = sorted(info.params["strategies"].items())
        raw = self.settings.nettrace_trader_catch_up_bars.strip()
        bars = min(int(raw), NODE_CATCH_UP_BARS) if raw.isdigit() and int(raw) > 0 else NODE_CATCH_UP_BARS
        if self.region == PRIMARY and self.account != "main":
            # live: the execution layer's own broker (ccxt, keys, API budget) — the Dagster resource
            from nettrace_dagster.execution.resource import ExecutionResource

            resource = ExecutionResource.from_settings(self.settings)
            return Trader(resource.engine(), resource.coordinator(), strategies, catch_up_bars=bars)
        # paper (every scout and secondary, and the primary without the live switch): the same
        # engine the resource builds — its fees, slippage and minimum order are the defaults below
        ledger, costs = ledger_of(self.settings), CostModel()
        engine = ExecutionEngine(ledger, PaperBroker(ledger, costs), load_rules(self.settings), costs,
                                 Path(self.settings.audit_dir), self.account,
                                 float(self.settings.nettrace_initial_capital_usd))
        return Trader(engine, Coordinator(ledger, self.settings.audit_dir, self.account), strategies,
                      catch_up_bars=bars)

    def _load_candles(self) -> dict[str, pl.DataFrame]:
        """The lake's candles (what the pipeline refreshed); on the simulator without a lake, the
        simulated market itself, a window of recent bars."""
        from nettrace_dagster.deploy.gate import lake_candles

        out: dict[str, pl.DataFrame] = {}
        for symbol in self.settings.symbols:
            stored = lake_candles(self.settings, symbol)
            if stored is not None:
                out[symbol] = stored.tail(SIM_WINDOW_BARS * 4)
            elif self.settings.market_source == "sim":
                out[symbol] = self._sim_candles(symbol)
        return out

    def _sim_candles(self, symbol: str) -> pl.DataFrame:
        from nettrace_dagster.market.sources import make_source

        if self._sim is None:
            s = self.settings
            self._sim = make_source("sim", timeframe=s.nettrace_timeframe, sim_seed=s.nettrace_sim_seed,
                                    sim_bars=SIM_WINDOW_BARS, sim_speed=s.nettrace_sim_speed)
        have = self._candles.get(symbol)
        since = have["timestamp"][-1] if have is not None and have.height else None
        new = self._sim.fetch(symbol, since)
        frame = new if have is None else pl.concat([have, new], how="vertical")
        self._candles[symbol] = frame.tail(SIM_WINDOW_BARS)
        return self._candles[symbol]

    def tick_once(self) -> None:
        with self.lock:
            info = self.release
        if info is None:
            return
        if self._trader is None:
            self._trader = self._trader_for(info)
        trader = self._trader
        report = trader.tick(self._load_candles())
        status = trader.engine.status()
        positions = [{"strategy": p["strategy"], "symbol": p["symbol"], "qty": p["qty"], "value": p["value"]}
                     for p in status["positions"] if p["qty"] > 0]
        with self.lock:
            if self.release is not info:
                return  # a new release arrived mid-tick: this tick's telemetry is not its
            self.last_tick, self.ticks, self.error = time.time(), self.ticks + 1, ""
            self.telemetry = {
                "positions": positions, "equity": status["equity"], "principal": status["principal"],
                "pnl": status["equity"] - status["principal"], "daily_pnl": status["rules"]["daily_pnl"],
                "hardstop": status["hardstop"]["on"], "bars": report.bars, "orders": report.counts(),
                "tick_ran": report.ran, "tick_reasons": report.reasons[:3],
            }

    def _loop(self) -> None:
        from nettrace_dagster.ledger.db import ledger_of

        interval = float(self.settings.nettrace_node_tick_seconds)
        holder = f"node:{self.region}:{os.getpid()}"
        while not self.stop.is_set():
            try:
                if self.region == PRIMARY and self.release is not None:
                    renew_lease(ledger_of(self.settings), self.account, holder, ttl_s=max(30.0, 3 * interval))
                self.tick_once()
            except Exception as exc:  # noqa: BLE001 - reported on /health and /telemetry, the loop goes on
                with self.lock:
                    self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
                log.error("tick failed: %s", traceback.format_exc(limit=3))
            self.wake.wait(interval)
            self.wake.clear()
        if self.region == PRIMARY:
            try:
                release_lease(ledger_of(self.settings), self.account, holder)
            except Exception:  # noqa: BLE001 - the lease expires by itself
                pass

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "region": self.region, "role": self.role, "account": self.account, "pid": os.getpid(),
                "release": self.release.release_id if self.release else None,
                "loaded_at": self.loaded_at, "last_tick_ts": self.last_tick,
                "last_tick": datetime.fromtimestamp(self.last_tick, UTC).isoformat() if self.last_tick else None,
                "ticks": self.ticks, "error": self.error, "orders_for_account": self.region == PRIMARY,
                **self.telemetry,
            }

    def authorised(self, header: str | None) -> bool:
        if not self.token or not header or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer "):].encode(), self.token.encode())


def warm_up(state: NodeState) -> None:
    """Pay the imports and the strategies' first run before the node answers `/health`, so a
    release it is given starts trading at once (its health window is not spent importing)."""
    import nettrace_dagster.execution.paper  # noqa: F401
    import nettrace_dagster.trading.trader  # noqa: F401

    if state.region == PRIMARY and state.account != "main":
        import nettrace_dagster.execution.resource  # noqa: F401 - live: the Dagster resource's broker
    import numpy as np

    from nettrace_dagster.strategies.registry import STRATEGIES

    # a random walk in the candle schema (not the simulator: its scipy import alone costs seconds,
    # and a node reading the lake never needs it)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.002, 300)))
    frame = pl.DataFrame({"timestamp": np.arange(300, dtype=np.int64) * 60_000, "open": close, "high": close * 1.001,
                          "low": close * 0.999, "close": close, "volume": np.ones(300)}).with_columns(
        pl.col("timestamp").cast(pl.Datetime("ms", "UTC")))
    for cls in STRATEGIES.values():
        try:
            cls().run(frame, dict(cls.default_params))
        except Exception:  # noqa: BLE001 - only a warm-up: the real tick reports its own errors
            pass


def build_app(state: NodeState) -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(_: Request) -> JSONResponse:
        snap = state.snapshot()
        ok = state.thread.is_alive() and not snap["error"]
        return JSONResponse({"ok": ok, "region": state.region, "role": state.role, "release": snap["release"],
                             "error": snap["error"], "pid": os.getpid()}, status_code=200 if ok else 503)

    async def telemetry(_: Request) -> JSONResponse:
        return JSONResponse(state.snapshot())

    async def load_release(request: Request) -> JSONResponse:
        if not state.token:
            return JSONResponse({"error": "this node has no NETTRACE_NODE_TOKEN: releases cannot be loaded"},
                                status_code=503)
        if not state.authorised(request.headers.get("authorization")):
            return JSONResponse({"error": "missing or wrong token"}, status_code=401)
        try:
            body = await request.json()
            release_id = str(body["release"])
        except Exception:  # noqa: BLE001 - any malformed body is the client's error
            return JSONResponse({"error": 'expected JSON {"release": "<id>"}'}, status_code=400)
        try:
            info = await run_in_threadpool(state.load, release_id)
        except DeployError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except Exception as exc:  # noqa: BLE001
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"[:300]}, status_code=500)
        log.info("release %s loaded (%s)", info.release_id, canonical(sorted(info.strategies)))
        return JSONResponse({"release": info.release_id, "region": state.region, "loaded_at": state.loaded_at})

    @asynccontextmanager
    async def lifespan(_: Starlette):  # noqa: ANN202
        state.thread.start()
        try:
            yield
        finally:
            state.stop.set()
            state.wake.set()
            state.thread.join(timeout=10)

    return Starlette(routes=[Route("/health", health), Route("/telemetry", telemetry),
                             Route("/release", load_release, methods=["POST"])], lifespan=lifespan)


def serve(region: str, port: int, host: str = "127.0.0.1", release: str | None = None,
          settings: Settings | None = None) -> None:
    """Run one node until SIGTERM/SIGINT (uvicorn's graceful shutdown stops the loop first)."""
    import uvicorn

    settings = settings or load_settings()
    state = NodeState(region, settings, settings.nettrace_node_token)
    warm_up(state)
    if release:
        state.load(release)
    uvicorn.run(build_app(state), host=host, port=port, log_level="warning", access_log=False)
