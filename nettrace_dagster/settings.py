"""Every NetTrace setting, in one place.

Each setting is an environment variable with a default; the README's table is checked against
`SETTINGS` by a test, so a new setting is documented or the suite fails. Read settings with
`load_settings()`; a bad value is a `SettingsError` with one line naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """A setting has a value NetTrace cannot use."""


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    kind: type
    doc: str
    choices: tuple[str, ...] = ()


SETTINGS: tuple[Setting, ...] = (
    Setting("NETTRACE_HOME", "./.nettrace", Path, "All state: Parquet lake, DuckDB, ledger, audit logs, DAGSTER_HOME."),
    Setting("NETTRACE_PROFILE", "local", str, "`local` (offline simulator) or `live` (ccxt prices, paper trading).",
            ("local", "live")),
    Setting("NETTRACE_MARKET_SOURCE", "", str,
            "Where candles come from: `sim`, `ccxt` or `file`. Empty: `sim` on local, `ccxt` on live.",
            ("", "sim", "ccxt", "file")),
    Setting("NETTRACE_SYMBOLS", "BTC-USDT,ETH-USDT,SOL-USDT", str, "Symbols (partition keys), comma separated."),
    Setting("NETTRACE_TIMEFRAME", "1m", str, "Candle timeframe for the sim and ccxt sources (1m … 1d)."),
    Setting("NETTRACE_SIM_SEED", "7", int, "Seed of the simulated market: same seed, same bars."),
    Setting("NETTRACE_SIM_BARS", "10080", int, "Bars per symbol the simulator holds (10080 = 7 days of 1m)."),
    Setting("NETTRACE_CCXT_EXCHANGE", "binance", str, "ccxt exchange id for the ccxt source and broker."),
    Setting("NETTRACE_CCXT_HISTORY_DAYS", "7", int, "How far back the first ccxt fetch of a symbol goes."),
    Setting("NETTRACE_CCXT_MAX_RETRIES", "5", int, "Tries per ccxt request on transient errors before failing."),
    Setting("NETTRACE_IMPORT_DIR", "./import", Path, "Folder the `file` source reads: `<SYMBOL>.csv` or `.parquet`."),
    Setting("NETTRACE_CANDLES_REFRESH_MINUTES", "15", int, "Interval of the candles refresh schedule."),
    Setting("NETTRACE_GAP_TOLERANCE", "0.01", float, "Share of missing bars the gap check tolerates."),
    Setting("NETTRACE_REGIME_WINDOW", "300", int, "Bars in the regime detector's trailing window."),
    Setting("NETTRACE_LEDGER_URL", "", str, "SQLAlchemy URL of the ledger. Empty: SQLite in NETTRACE_HOME."),
    Setting("NETTRACE_LIVE_TRADING", "0", bool, "Second switch for real orders (needs keys too). Off: paper."),
    Setting("NETTRACE_EXCHANGE_API_KEY", "", str, "Exchange API key for real trading (never logged)."),
    Setting("NETTRACE_EXCHANGE_API_SECRET", "", str, "Exchange API secret for real trading (never logged)."),
    Setting("NETTRACE_INITIAL_CAPITAL_USD", "100.0", float, "Paper account's starting capital."),
    Setting("NETTRACE_LEDGER_SYNCHRONOUS", "FULL", str,
            "SQLite fsync mode of the ledger: FULL survives power cuts, NORMAL only crashes.",
            ("FULL", "NORMAL", "EXTRA")),
    Setting("NETTRACE_TRADING_TICK_MINUTES", "1", int, "Interval of the trading_tick schedule (a divisor of 60)."),
    Setting("NETTRACE_TRADER_CATCH_UP_BARS", "", str,
            "Bars one tick may trade after its cursor. Empty: a day of bars on sim, 1 on real markets."),
    *(Setting(f"NETTRACE_RULE_{name}", "", str, f"Tighten {what}; empty = built-in (docs/execution.md). "
              "A loosening value is refused at load.")
      for name, what in (
          ("EQUITY_FLOOR_USD", "the HARDSTOP equity floor (Rule 1)"),
          ("MAX_DRAWDOWN", "the HARDSTOP drawdown from peak (Rule 1)"),
          ("PRINCIPAL_LOCK_GAIN", "the gain at which the principal locks (Rule 1)"),
          ("MIN_CONFIDENCE", "the entry confidence floor (Rule 2)"),
          ("MIN_CONFIRMATIONS", "the confirming signals an entry needs (Rule 2)"),
          ("MIN_WIN_RATE", "the win rate below which a strategy may not open trades (Rule 2)"),
          ("WIN_RATE_MIN_TRADES", "the sample before the win-rate rule applies (Rule 2)"),
          ("REINVEST_FRACTION", "the reinvested share of realised profit, 20–35 % (Rule 3)"),
          ("FIRE_MIN_TRADES", "the round trips before a losing strategy is fired (Rule 3)"),
          ("FIRE_WIN_RATE", "the win rate below which a strategy is fired (Rule 3)"),
          ("CLONE_MIN_TRADES", "the round trips before a winner is cloned (Rule 3)"),
          ("CLONE_WIN_RATE", "the win rate a winner needs to be cloned (Rule 3)"),
          ("CLONE_MIN_SHARPE", "the per-trade Sharpe a winner needs to be cloned (Rule 3)"),
          ("MAX_POSITION_FRACTION", "the largest share of equity one entry may use"),
          ("MIN_RESERVE_FRACTION", "the share of equity kept as untouchable cash reserve"),
      )),
    Setting("REGIME_BULL_THRESHOLD", "0.01", float, "Trailing-window return above which a bar is BULL."),
    Setting("REGIME_BEAR_THRESHOLD", "-0.01", float, "Trailing-window return below which a bar is BEAR."),
    Setting("PARAM_OPT_INTERVAL_HOURS", "6", int, "Hours between parameter optimizations."),
    Setting("PARAM_OPT_COLD_LOOKBACK_DAYS", "7", int, "Days of history in a COLD backtest."),
    Setting("PARAM_OPT_MAX_DAILY_LOSS_USD", "5.0", float, "Daily loss limit (Rule 1); may only be tightened."),
    Setting("DISCOVERY_ARXIV_ENABLED", "1", bool, "Read arXiv feeds during discovery."),
    Setting("OPPORTUNITY_MIN_SCORE_FOR_SUBMISSION", "0.65", float, "Score at which an opportunity gets code."),
    Setting("SLACK_WEBHOOK_URL", "", str, "Slack incoming webhook for alerts (empty: log only)."),
    Setting("DISCORD_WEBHOOK_URL", "", str, "Discord webhook for alerts (empty: log only)."),
    Setting("FLYCTL_PATH", "flyctl", str, "flyctl binary for Fly.io deploys."),
    Setting("FLY_API_TOKEN", "", str, "Fly.io token; when set on `live`, Fly is the deploy target (never logged)."),
    Setting("ANTHROPIC_API_KEY", "", str, "Claude key for strategy generation on `live` (never logged)."),
)

_BY_NAME = {s.name: s for s in SETTINGS}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse(setting: Setting, raw: str) -> Any:
    raw = raw.strip()
    if setting.choices and raw not in setting.choices:
        raise SettingsError(f"{setting.name}={raw!r}: expected one of {', '.join(c for c in setting.choices if c)}")
    try:
        if setting.kind is bool:
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError(raw)
        if setting.kind is Path:
            return Path(raw).expanduser().resolve()
        return setting.kind(raw)
    except ValueError:
        raise SettingsError(f"{setting.name}={raw!r} is not a valid {setting.kind.__name__}") from None


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Attribute names are the variable names in lower case."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, item: str) -> Any:
        try:
            return self.values[item.upper()]
        except KeyError:
            raise AttributeError(item) from None

    @property
    def home(self) -> Path:
        return self.values["NETTRACE_HOME"]

    @property
    def symbols(self) -> list[str]:
        symbols = [s.strip() for s in self.values["NETTRACE_SYMBOLS"].split(",") if s.strip()]
        for s in symbols:
            if "/" in s:
                raise SettingsError(f"NETTRACE_SYMBOLS: {s!r} contains '/'; write it as {s.replace('/', '-')}")
        return symbols

    @property
    def market_source(self) -> str:
        chosen = self.values["NETTRACE_MARKET_SOURCE"]
        if chosen:
            return chosen
        return "ccxt" if self.values["NETTRACE_PROFILE"] == "live" else "sim"

    @property
    def ledger_url(self) -> str:
        return self.values["NETTRACE_LEDGER_URL"] or f"sqlite:///{self.home / 'ledger.db'}"

    # Where things live under NETTRACE_HOME: the one map of the state folder.
    @property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @property
    def audit_dir(self) -> Path:
        return self.home / "audit"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def strategies_dir(self) -> Path:
        return self.home / "strategies"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.home / 'optuna.db'}"


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Read every setting from `env` (default: the process environment)."""
    env = os.environ if env is None else env
    values = {s.name: _parse(s, env.get(s.name, s.default)) for s in SETTINGS}
    return Settings(values)


def setting(name: str) -> Setting:
    return _BY_NAME[name]
