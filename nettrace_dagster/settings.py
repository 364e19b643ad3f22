"""Every NetTrace setting, in one place.

Each setting is an environment variable with a default; the README's table is checked against
`SETTINGS` by a test, so a new setting is documented or the suite fails. Read settings with
`load_settings()`; a bad value is a `SettingsError` with one line naming the variable.

Every value is checked when it is loaded, not where it is first used: a number outside its
`Range` (or not finite), a timeframe that is not 1m … 1d, a symbol list with a typo, a home that
is a file. A run that starts has settings it can finish with.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nettrace_dagster.market.symbols import SymbolError, parse_symbol_list


class SettingsError(ValueError):
    """A setting has a value NetTrace cannot use."""


@dataclass(frozen=True)
class Range:
    """Allowed numbers: between `low` and `high`, each end closed unless marked open."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False  # inf passes `value > 0`, nan fails nothing: neither is ever a setting
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        low = "-inf" if self.low is None else _num(self.low)
        high = "inf" if self.high is None else _num(self.high)
        left = "(" if self.low_open or self.low is None else "["
        right = ")" if self.high_open or self.high is None else "]"
        return f"{left}{low}, {high}{right}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


# Shared ranges, so "a count" or "a share" means the same everywhere.
COUNT = Range(1, 1_000_000)
SHARE = Range(0.0, 1.0)
FINITE = Range()


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    kind: type
    doc: str
    choices: tuple[str, ...] = ()
    # Numbers (int/float kinds, or `number` for a str setting where empty means "built-in") must
    # be finite and inside `bounds`; `check` adds a rule a range cannot say (returns the problem).
    bounds: Range | None = None
    number: type | None = None
    check: Callable[[Any], str | None] | None = None
    secret: bool = False  # never echo the value in an error (keys, tokens, webhook URLs)


def _folder(path: Path) -> str | None:
    # Walk up to the first thing that exists: a file anywhere on the way (NETTRACE_HOME=/etc/passwd,
    # or /etc/passwd/x) fails here, not as NotADirectoryError deep inside a write.
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else f"{candidate} is a file, not a folder"
    return None


def _symbols(value: str) -> str | None:
    try:
        parse_symbol_list(value, "symbol")
    except SymbolError as exc:
        return str(exc)
    return None


def _timeframe(value: str) -> str | None:
    from nettrace_dagster.market.schema import CandleError, timeframe_seconds  # the one parser

    try:
        seconds = timeframe_seconds(value)
    except CandleError:
        seconds = 0
    if 60 <= seconds <= 86400:
        return None
    return "expected a timeframe like 1m, 5m, 15m, 1h, 4h or 1d (1 minute … 1 day)"


def _divides_hour(minutes: int) -> str | None:
    return None if 60 % minutes == 0 else "must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)"


def _schedule_minutes(minutes: int) -> str | None:
    # The schedule's own rule (cron.py), so load and schedule never disagree.
    from nettrace_dagster.cron import every_minutes_cron

    try:
        every_minutes_cron(minutes, "")
    except SettingsError:
        return "use a divisor of 60, or whole hours (60, 120, … 1440)"
    return None


def _urls(value: str) -> str | None:
    from urllib.parse import urlsplit

    for url in (u.strip() for u in value.split(",") if u.strip()):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return f"{url!r} is not an http(s) URL"
    return None


def _api_base_url(value: str) -> str | None:
    from urllib.parse import urlsplit

    if not value.strip():
        return None
    parts = urlsplit(value.strip())
    # The API key travels with every request: plain http only to this machine.
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return None
    return "expected an https URL, or http://127.0.0.1:PORT for a loopback fake"
def _postgres_url(value: str) -> str | None:
    # dagster-postgres hands the URL to SQLAlchemy; 2.1 maps a bare postgresql:// to psycopg 3, on
    # which its `NOTIFY run_events, %(id)s` is a syntax error. psycopg2 must be named.
    if not value or value.startswith("postgresql+psycopg2://"):
        return None
    return ("expected postgresql+psycopg2://user:password@host:5432/database (dagster-postgres needs the "
            "psycopg2 driver named)")


def _broker_url(value: str) -> str | None:
    if not value or value.startswith(("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://")):
        return None
    return "expected a redis://… or amqp://… URL"


def _backend_url(value: str) -> str | None:
    if not value or value.startswith(("redis://", "rediss://", "rpc://", "db+")):
        return None
    return "expected redis://…, rpc:// or db+postgresql://…"


SETTINGS: tuple[Setting, ...] = (
    Setting("NETTRACE_HOME", "./.nettrace", Path, "All state: Parquet lake, DuckDB, ledger, audit logs, DAGSTER_HOME.",
            check=_folder),
    Setting("NETTRACE_PROFILE", "local", str, "`local` (offline simulator) or `live` (ccxt prices, paper trading).",
            ("local", "live")),
    Setting("NETTRACE_MARKET_SOURCE", "", str,
            "Where candles come from: `sim`, `ccxt` or `file`. Empty: `sim` on local, `ccxt` on live.",
            ("", "sim", "ccxt", "file")),
    Setting("NETTRACE_SYMBOLS", "BTC-USDT,ETH-USDT,SOL-USDT", str,
            "Symbols (partition keys), comma separated, each BASE-QUOTE in letters and digits.", check=_symbols),
    Setting("NETTRACE_TIMEFRAME", "1m", str, "Candle timeframe for the sim and ccxt sources (1m … 1d).",
            check=_timeframe),
    Setting("NETTRACE_SIM_SEED", "7", int, "Seed of the simulated market: same seed, same bars.",
            bounds=Range(0, 2**32 - 1)),
    Setting("NETTRACE_SIM_BARS", "30240", int, "Bars of history before now the simulator starts with (30240 = 21 days of 1m: "
            "the optimizer's gate needs each regime's stretches both in and out of sample).",
            bounds=Range(1, 10_000_000)),
    Setting("NETTRACE_SIM_SPEED", "1", float, "Simulated time per real time (1 = real time, 60 = a minute a second).",
            bounds=Range(0.001, 10_000)),
    Setting("NETTRACE_CCXT_EXCHANGE", "binance", str, "ccxt exchange id for the ccxt source and broker."),
    Setting("NETTRACE_CCXT_BASE_URL", "", str, "Tests only: a loopback URL ccxt uses, not the exchange."),
    Setting("NETTRACE_CCXT_HISTORY_DAYS", "7", int, "How far back the first ccxt fetch of a symbol goes.",
            bounds=Range(1, 3650)),
    Setting("NETTRACE_CCXT_MAX_RETRIES", "5", int, "Tries per ccxt request on transient errors before failing.",
            bounds=Range(1, 100)),
    Setting("NETTRACE_IMPORT_DIR", "./import", Path, "Folder the `file` source reads: `<SYMBOL>.csv` or `.parquet`."),
    Setting("NETTRACE_CANDLES_REFRESH_MINUTES", "15", int, "Interval of the candles refresh schedule.",
            bounds=Range(1, 1440), check=_schedule_minutes),
    Setting("NETTRACE_GAP_TOLERANCE", "0.01", float, "Share of missing bars the gap check tolerates.", bounds=SHARE),
    Setting("NETTRACE_REGIME_WINDOW", "300", int, "Bars in the regime detector's trailing window.",
            bounds=Range(2, 1_000_000)),
    Setting("NETTRACE_LEDGER_URL", "", str, "SQLAlchemy URL of the ledger. Empty: SQLite in NETTRACE_HOME.",
            secret=True),
    Setting("NETTRACE_LIVE_TRADING", "0", bool, "Second switch for real orders (needs keys too). Off: paper."),
    Setting("NETTRACE_EXCHANGE_API_KEY", "", str, "Exchange API key for real trading (never logged).", secret=True),
    Setting("NETTRACE_EXCHANGE_API_SECRET", "", str, "Exchange API secret for real trading (never logged).",
            secret=True),
    Setting("NETTRACE_INITIAL_CAPITAL_USD", "100.0", float, "Paper account's starting capital.",
            bounds=Range(0, 1e9, low_open=True)),
    Setting("NETTRACE_LEDGER_SYNCHRONOUS", "FULL", str,
            "SQLite fsync mode of the ledger: FULL survives power cuts, NORMAL only crashes.",
            ("FULL", "NORMAL", "EXTRA")),
    Setting("NETTRACE_TRADING_TICK_MINUTES", "1", int, "How often the trading sensor looks for new candles, minutes (a divisor of 60).",
            bounds=Range(1, 60), check=_divides_hour),
    Setting("NETTRACE_TRADER_CATCH_UP_BARS", "", str,
            "Bars one tick may trade after its cursor. Empty: a day of bars on sim, 1 on real markets.",
            number=int, bounds=COUNT),
    # The rules check tightening themselves (rules.py, when the execution layer loads); here
    # only "a finite number or empty", so a typo fails every command, not just the trading ones.
    *(Setting(f"NETTRACE_RULE_{name}", "", str, f"Tighten {what}; empty = built-in (docs/execution.md). "
              "A loosening value is refused at load.", number=float, bounds=FINITE)
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
    Setting("REGIME_BULL_THRESHOLD", "0.01", float, "Trailing-window return above which a bar is BULL.",
            bounds=Range(-1.0, 1.0)),
    Setting("REGIME_BEAR_THRESHOLD", "-0.01", float, "Trailing-window return below which a bar is BEAR.",
            bounds=Range(-1.0, 1.0)),
    Setting("PARAM_OPT_MAX_DAILY_LOSS_USD", "5.0", float, "Daily loss limit (Rule 1); may only be tightened.",
            bounds=Range(0, 1e9, low_open=True)),
    # --- deploy (releases, execution nodes, staged rollout) and alerts ---------------------------
    Setting("SLACK_WEBHOOK_URL", "", str, "Slack incoming webhook for alerts (never logged). Empty: alerts are logged and audited only.",
            secret=True),
    Setting("DISCORD_WEBHOOK_URL", "", str, "Discord webhook, the alerts' fallback when Slack fails (never logged).",
            secret=True),
    Setting("NETTRACE_ALERT_MIN_INTERVAL_S", "60", float,
            "Rate limit: the same alert (severity + title) is sent at most once per this many seconds (P0 always).",
            bounds=Range(0, 86400)),
    Setting("NETTRACE_ALERT_TIMEOUT_S", "3", float, "HTTP timeout of one webhook post, seconds.",
            bounds=Range(0.05, 60)),
    Setting("NETTRACE_DEPLOY_TARGET", "local", str, "Where releases run: `local` (node processes on loopback) or `fly`.",
            ("local", "fly")),
    Setting("NETTRACE_NODE_TOKEN", "", str,
            "Shared token execution nodes require to load a release (never logged). Empty: `local` makes one per home.",
            secret=True),
    Setting("NETTRACE_DEPLOY_BASE_PORT", "8710", int, "First loopback port of local execution nodes (one port per region).",
            bounds=Range(1024, 65000)),
    Setting("NETTRACE_NODE_TICK_SECONDS", "5", float, "How often an execution node runs its trading loop.",
            bounds=Range(0.2, 3600)),
    Setting("NETTRACE_DEPLOY_STAGE_TIMEOUT_S", "120", float,
            "Canary and full stages: seconds for a region's health gates to pass before it counts as failed.",
            bounds=Range(1, 7200)),
    Setting("NETTRACE_DEPLOY_PRIMARY_TIMEOUT_S", "600", float,
            "Primary stage: seconds for the primary's extended health validation to pass.", bounds=Range(1, 7200)),
    Setting("NETTRACE_DEPLOY_SOAK_S", "10", float,
            "Canary and full stages: seconds the gates must keep passing once they first pass.", bounds=Range(0, 3600)),
    Setting("NETTRACE_DEPLOY_PRIMARY_SOAK_S", "60", float,
            "Primary stage (extended validation): seconds the gates must keep passing.", bounds=Range(0, 7200)),
    Setting("NETTRACE_DEPLOY_HTTP_TIMEOUT_S", "2", float, "Timeout of one health request to a node, seconds.",
            bounds=Range(0.05, 120)),
    Setting("NETTRACE_TELEMETRY_MAX_AGE_S", "30", float,
            "A node's telemetry is fresh when its last trading tick is at most this old.", bounds=Range(0.5, 86400)),
    Setting("FLYCTL_PATH", "flyctl", str, "The flyctl executable the `fly` deploy target runs."),
    Setting("FLY_API_TOKEN", "", str, "Fly.io API token for the `fly` deploy target (never logged).", secret=True),
    Setting("NETTRACE_FLY_APP", "nettrace", str, "Fly app name prefix: region R runs in app `<prefix>-R`."),
    Setting("NETTRACE_FLY_IMAGE", "registry.fly.io/nettrace:latest", str, "Image the `fly` target deploys."),
    # Discovery (issue 11): sources, fetching, scoring, code generation.
    *(Setting(f"DISCOVERY_{name}_ENABLED", "1", bool, f"Discover from {what}.")
      for name, what in (("ARXIV", "arXiv (q-fin.TR, q-fin.CP, stat.ML)"), ("REDDIT", "Reddit RSS (trading communities)"),
                         ("SEC", "SEC EDGAR Atom feeds"), ("UPGRADES", "chain-client release feeds (network upgrades)"),
                         ("DEFILLAMA", "DefiLlama's protocol list (DeFi launches)"),
                         ("SOCIAL", "social posts through DISCOVERY_SOCIAL_URL (an RSS bridge)"),
                         ("INBOX", "the inbox folder NETTRACE_HOME/inbox (.txt, .md, .json)"))),
    *(Setting(f"DISCOVERY_{name}_URL", "", str,
              f"Feed URL(s) of {name.lower()}, comma separated; fetched on any profile. Empty: the shipped sample "
              f"on `local`, {live} on `live`.", check=_urls)
      for name, live in (("ARXIV", "the arXiv API"), ("REDDIT", "r/algotrading and r/CryptoMarkets"),
                         ("SEC", "EDGAR's latest 8-K filings"), ("UPGRADES", "go-ethereum, bitcoin and agave releases"),
                         ("DEFILLAMA", "api.llama.fi/protocols"), ("SOCIAL", "nothing (no free X/Twitter API)"))),
    Setting("DISCOVERY_MAX_BYTES", "16000000", int, "Largest feed response read, bytes; a larger one fails its source.",
            bounds=Range(1024, 1_000_000_000)),
    Setting("DISCOVERY_CONNECT_TIMEOUT_S", "5", float, "Seconds to connect to a feed server.",
            bounds=Range(0.1, 300)),
    Setting("DISCOVERY_READ_TIMEOUT_S", "20", float, "Seconds a feed server may stay silent mid-response.",
            bounds=Range(0.1, 600)),
    Setting("DISCOVERY_MAX_RETRIES", "2", int, "Retries of a feed fetch after a timeout, connection error or 5xx.",
            bounds=Range(0, 10)),
    Setting("DISCOVERY_USER_AGENT", "NetTrace-discovery/0.1 (set a contact here for SEC EDGAR)", str,
            "User-Agent of feed requests (SEC EDGAR asks for a contact address)."),
    Setting("DISCOVERY_INTERVAL_MINUTES", "360", int, "Interval of the discovery schedule (a divisor of 60 or whole hours).",
            bounds=Range(1, 1440), check=_schedule_minutes),
    Setting("DISCOVERY_MAX_GENERATED", "5", int, "Most strategies generated per discovery run (best scores first).",
            bounds=Range(0, 1000)),
    Setting("OPPORTUNITY_MIN_SCORE_FOR_SUBMISSION", "0.65", float,
            "Weighted score at or above which an opportunity gets strategy code generated.", bounds=SHARE),
    Setting("OPPORTUNITY_CLAUDE_SCORING", "1", bool,
            "With ANTHROPIC_API_KEY set, blend Claude's per-criterion scores with the heuristic ones."),
    Setting("CODEGEN_MODE", "", str, "`template`, `claude` or `hybrid`. Empty: claude on `live` with a key, else "
            "template. Without ANTHROPIC_API_KEY it is always template.", ("", "template", "claude", "hybrid")),
    Setting("ANTHROPIC_API_KEY", "", str, "Claude API key for code generation and scoring (never logged).", secret=True),
    Setting("ANTHROPIC_MODEL", "claude-sonnet-4-5", str, "Claude model used for generation and scoring."),
    Setting("ANTHROPIC_BASE_URL", "", str, "Messages API base URL (tests, proxies): https, or http on loopback only. "
            "Empty: Anthropic's.", check=_api_base_url),
    Setting("ANTHROPIC_TIMEOUT_S", "60", float, "Seconds one Claude request may take.", bounds=Range(1, 600)),
    Setting("ANTHROPIC_MAX_RETRIES", "2", int, "SDK retries on 408/409/429/5xx/529 before falling back.",
            bounds=Range(0, 10)),
    Setting("VALIDATION_SANDBOX_TIMEOUT_S", "30", float,
            "Wall clock (and CPU seconds) of one sandboxed strategy run; may only be shortened.",
            bounds=Range(1, 30)),
    Setting("VALIDATION_SANDBOX_MEMORY_MB", "1024", int, "Resident memory of one sandboxed strategy run (cgroup).",
            bounds=Range(128, 16384)),
    Setting("PARAM_OPT_INTERVAL_HOURS", "6", int, "Hours between parameter optimization rounds (one study per regime).",
            bounds=Range(1, 24)),
    Setting("PARAM_OPT_TRIALS", "", str,
            "Trials per regime study. Empty: 40 on the local profile (seconds), 200 on live.",
            number=int, bounds=Range(2, 100_000)),
    Setting("PARAM_OPT_STORAGE_URL", "", str,
            "Optuna storage URL (e.g. postgresql://…) so several processes/machines search one study. "
            "Empty: SQLite `optuna.db` in NETTRACE_HOME.", secret=True),
    Setting("PARAM_OPT_OOS_FRACTION", "0.3", float, "Share of the latest bars held out of the search for the "
            "walk-forward test.", bounds=Range(0.05, 0.8)),
    Setting("PARAM_OPT_MIN_DSR", "0.95", float, "Gate: deflated Sharpe ratio a candidate needs (a probability).",
            bounds=SHARE),
    Setting("PARAM_OPT_MAX_PBO", "0.5", float, "Gate: highest probability of backtest overfitting (CSCV) allowed.",
            bounds=SHARE),
    Setting("PARAM_OPT_MIN_OOS_SHARPE", "0.5", float, "Gate: annualised out-of-sample Sharpe a candidate needs.",
            bounds=FINITE),
    # --- promotion (docs/promotion.md) ---
    Setting("PARAM_OPT_COLD_LOOKBACK_DAYS", "7", float, "COLD stage: days of recent bars the candidate is backtested on.",
            bounds=Range(0, 3650, low_open=True)),
    Setting("PARAM_OPT_COLD_MIN_SHARPE", "0.5", float, "COLD stage: the backtest Sharpe a candidate needs.",
            bounds=Range(-100, 100)),
    Setting("PARAM_OPT_WARM_HOURS", "4", float, "WARM stage: hours the candidate trades on paper beside its baseline twin.",
            bounds=Range(0, 8760)),
    Setting("PARAM_OPT_WARM_MIN_EDGE", "0.10", float, "WARM stage: the edge over the baseline it needs (0.10 = +10 %).",
            bounds=Range(0, 100, low_open=True)),
    Setting("PARAM_OPT_LIMITED_HOURS", "24", float, "LIMITED stage: hours the candidate trades with a share of capital.",
            bounds=Range(0, 8760)),
    Setting("PARAM_OPT_LIMITED_MIN_EDGE", "0.15", float, "LIMITED stage: the edge over the baseline it needs (0.15 = +15 %).",
            bounds=Range(0, 100, low_open=True)),
    Setting("PARAM_OPT_LIMITED_FRACTION", "0.10", float, "LIMITED stage: share of the account's equity the candidate trades.",
            bounds=Range(0, 1, low_open=True)),
    Setting("PARAM_OPT_MAX_EXTENSIONS", "2", int, "WARM / LIMITED: times a window in which the candidate filled no order "
            "is extended (no trade is no evidence either way) before the candidate is rejected.",
            bounds=Range(0, 10)),
    Setting("NETTRACE_REQUIRE_APPROVAL", "0", bool, "1: a candidate waits at LIMITED until `nettrace approve ID` (or the approval job)."),
    Setting("PARAM_OPT_ROLLBACK_SHARPE_DROP", "0.30", float, "Guardrail: roll back when the FULL set's Sharpe falls this far below the replaced set's.",
            bounds=Range(0, 10, low_open=True)),
    Setting("PARAM_OPT_ROLLBACK_MAX_DRAWDOWN", "0.08", float, "Guardrail: roll back when the FULL set's drawdown since activation exceeds this.",
            bounds=Range(0, 1, low_open=True)),
    # Scale-out (issue 13): the Dagster instance on PostgreSQL, steps on Celery workers.
    Setting("NETTRACE_DAGSTER_PG_URL", "", str,
            "PostgreSQL URL (`postgresql+psycopg2://user:pw@host:5432/db`) for Dagster's runs, event logs and schedules. "
            "Empty: SQLite under NETTRACE_HOME/dagster. dagster.yaml refers to it by name, never by value.",
            check=_postgres_url, secret=True),
    Setting("NETTRACE_CELERY_BROKER_URL", "", str,
            "Celery broker (`redis://127.0.0.1:6379/0` or `amqp://guest:guest@127.0.0.1:5672//`): runs' steps go "
            "to `nettrace worker` processes. Empty: steps run on the launching machine.",
            check=_broker_url, secret=True),
    Setting("NETTRACE_CELERY_BACKEND_URL", "", str,
            "Celery result backend. Empty: the broker's Redis for a redis broker, `rpc://` for AMQP.",
            check=_backend_url, secret=True),
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
            if not raw:
                raise SettingsError(f"{setting.name} is empty: name a folder")  # '' would be the cwd
            value: Any = Path(raw).expanduser().resolve()
        else:
            value = setting.kind(raw)
    except (ValueError, OSError) as exc:
        if isinstance(exc, SettingsError):
            raise
        raise SettingsError(f"{setting.name}={raw!r} is not a valid {setting.kind.__name__}") from None
    number_kind = setting.number or (setting.kind if setting.kind in (int, float) else None)
    if number_kind is not None and (raw or setting.number is None):
        _check_number(setting, raw, value if setting.number is None else _as_number(setting, number_kind, raw))
    if setting.check is not None and (problem := setting.check(value)):
        shown = "<hidden>" if setting.secret else repr(raw)
        raise SettingsError(f"{setting.name}={shown}: {problem}")
    return value


def _as_number(setting: Setting, kind: type, raw: str) -> float:
    try:
        return kind(raw)
    except ValueError:
        noun = "whole number" if kind is int else "number"
        raise SettingsError(f"{setting.name}={raw!r} is not a {noun}") from None


def _check_number(setting: Setting, raw: str, value: float) -> None:
    bounds = setting.bounds or FINITE
    if not bounds.contains(value):
        noun = "a whole number" if isinstance(value, int) else "a finite number"
        where = "" if bounds == FINITE else f" in {bounds}"
        raise SettingsError(f"{setting.name}={raw!r}: must be {noun}{where}")


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
        """Canonical (upper-case) symbols; `load_settings` has already refused a bad list."""
        try:
            return parse_symbol_list(self.values["NETTRACE_SYMBOLS"], "symbol")
        except SymbolError as exc:  # only reachable for a Settings built by hand
            raise SettingsError(f"NETTRACE_SYMBOLS: {exc}") from None

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
    # Rules between settings: checked here too, so no run starts with a pair it cannot use.
    bull, bear = values["REGIME_BULL_THRESHOLD"], values["REGIME_BEAR_THRESHOLD"]
    if not bear < bull:
        raise SettingsError(f"REGIME_BEAR_THRESHOLD={bear:g} must be below REGIME_BULL_THRESHOLD={bull:g}")
    return Settings(values)


def setting(name: str) -> Setting:
    return _BY_NAME[name]
