"""CcxtSource against the loopback fake Binance: real ccxt code, no address but 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import ccxt
import polars as pl
import pytest

from nettrace_dagster.market.ccxt_source import CcxtSource, MarketDataError, make_exchange, to_ccxt_symbol
from nettrace_dagster.market.schema import CANDLE_SCHEMA, CandleError, candle_problems
from nettrace_dagster.settings import load_settings
from tests.fakes.binance import FakeBinance

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)  # half a minute into the 12:00 bar
LAST_CLOSED = datetime(2026, 1, 1, 11, 59, tzinfo=UTC)
BACKOFF = 0.01


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    with FakeBinance(now=NOW) as server:
        yield server


class Recorder:
    """Collects progress lines and backoff sleeps instead of printing and waiting."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.sleeps: list[float] = []


def source(fake: FakeBinance, rec: Recorder | None = None, timeout_ms: int = 1000, **kwargs: object) -> CcxtSource:
    rec = rec or Recorder()
    options: dict[str, object] = {"history_days": 1, "backoff_base": BACKOFF, **kwargs}
    return CcxtSource(exchange=fake.exchange(timeout_ms=timeout_ms), now=fake.now,
                      progress=rec.messages.append, sleep=rec.sleeps.append, **options)  # type: ignore[arg-type]


def test_paginates_across_pages(fake: FakeBinance) -> None:
    rec = Recorder()
    df = source(fake, rec, history_days=3).fetch("BTC-USDT", None)
    assert df.schema == pl.Schema(CANDLE_SCHEMA)
    assert df.height == 3 * 1440
    assert df["timestamp"][0] == NOW.replace(second=0) - timedelta(days=3)
    assert df["timestamp"][-1] == LAST_CLOSED
    assert candle_problems(df) == []
    assert df["true_regime"].null_count() == df.height
    assert fake.hits["/api/v3/klines"] == 5  # 4 full pages + the tail with the forming bar
    assert len(rec.messages) == 5 and "page 5" in rec.messages[-1]
    assert all(int(p["limit"]) == 1000 for m, path, p in fake.calls if path == "/api/v3/klines")


def test_incremental_fetch_returns_only_new_bars(fake: FakeBinance) -> None:
    src = source(fake)
    first = src.fetch("ETH-USDT", None)
    assert first["timestamp"][-1] == LAST_CLOSED
    last = first["timestamp"][-1]

    assert src.fetch("ETH-USDT", last).height == 0  # nothing closed since
    fake.advance(10 * 60)
    new = src.fetch("ETH-USDT", last)
    assert new["timestamp"].to_list() == [LAST_CLOSED + timedelta(minutes=i) for i in range(1, 11)]
    # The same bars fetched in one go match the incremental ones exactly.
    again = src.fetch("ETH-USDT", None)
    assert again.filter(pl.col("timestamp") > last).equals(new)

    hits = fake.hits["/api/v3/klines"]
    assert src.fetch("ETH-USDT", new["timestamp"][-1]).height == 0
    assert fake.hits["/api/v3/klines"] == hits  # caught up: not even a request


def test_forming_bar_is_dropped(fake: FakeBinance) -> None:
    ex = fake.exchange()
    raw = ex.fetch_ohlcv("BTC/USDT", "1m", since=int(LAST_CLOSED.timestamp() * 1000), limit=10)
    assert [r[0] for r in raw][-1] == int(NOW.replace(second=0).timestamp() * 1000)  # the fake sends it

    df = source(fake).fetch("BTC-USDT", LAST_CLOSED - timedelta(minutes=2))
    assert df["timestamp"].to_list() == [LAST_CLOSED - timedelta(minutes=1), LAST_CLOSED]

    fake.set_now(NOW.replace(minute=1, second=0))  # 12:01:00 sharp: the 12:00 bar has just closed
    df = source(fake).fetch("BTC-USDT", LAST_CLOSED)
    assert df["timestamp"].to_list() == [NOW.replace(second=0)]


@pytest.mark.parametrize("fault", [
    {"status": 429},                  # DDoSProtection
    {"status": 418},                  # DDoSProtection (IP ban)
    {"status": 503},                  # HTML page: ExchangeNotAvailable
    {"status": 400, "code": -1003},   # RateLimitExceeded
    {"status": 500, "code": -1000},   # OperationFailed: Binance's "unknown error", worth a retry
], ids=["429", "418", "503-html", "400-1003", "500-1000"])
def test_transient_errors_are_retried_with_backoff(fake: FakeBinance, fault: dict[str, int]) -> None:
    rec = Recorder()
    fake.fail_next("/api/v3/klines", times=2, **fault)
    df = source(fake, rec).fetch("SOL-USDT", None)
    assert df.height == 1440
    assert rec.sleeps == [BACKOFF, 2 * BACKOFF]
    assert fake.hits["/api/v3/klines"] == 2 + 2  # two failures, then two pages
    assert sum("retrying" in m for m in rec.messages) == 2


def test_timeout_is_retried(fake: FakeBinance) -> None:
    rec = Recorder()
    fake.fail_next("/api/v3/klines", delay=1.0)  # longer than the client's 300 ms
    df = source(fake, rec, timeout_ms=300).fetch("BTC-USDT", LAST_CLOSED - timedelta(minutes=5))
    assert df.height == 5
    assert any("RequestTimeout" in m for m in rec.messages)


def test_gives_up_after_bounded_tries(fake: FakeBinance) -> None:
    rec = Recorder()
    fake.fail_next("/api/v3/klines", status=429, times=10)
    with pytest.raises(MarketDataError) as err:
        source(fake, rec, max_retries=3).fetch("BTC-USDT", None)
    message = str(err.value)
    assert message.startswith("binance BTC/USDT 1m: gave up after 3 tries: DDoSProtection: ")
    assert "\n" not in message and len(message) < 300
    assert fake.hits["/api/v3/klines"] == 3
    assert rec.sleeps == [BACKOFF, 2 * BACKOFF]


def test_gave_up_message_is_one_line_for_html(fake: FakeBinance) -> None:
    fake.fail_next("/api/v3/klines", status=503, times=2)
    with pytest.raises(MarketDataError, match=r"gave up after 2 tries: ExchangeNotAvailable") as err:
        source(fake, max_retries=2).fetch("BTC-USDT", None)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("fault", "kind"), [
    ({"status": 401, "code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, "AuthenticationError"),
    ({"status": 400, "code": -1100, "msg": "Illegal characters found in a parameter."}, "BadRequest"),
    ({"status": 400, "code": -9999, "msg": "Something the client cannot fix by waiting."}, "ExchangeError"),
])
def test_non_transient_error_fails_at_once(fake: FakeBinance, fault: dict[str, object], kind: str) -> None:
    rec = Recorder()
    fake.fail_next("/api/v3/klines", **fault)  # type: ignore[arg-type]
    with pytest.raises(MarketDataError, match=rf"^binance BTC/USDT 1m: {kind}: ") as err:
        source(fake, rec).fetch("BTC-USDT", None)
    assert "gave up" not in str(err.value)
    assert fake.hits["/api/v3/klines"] == 1
    assert rec.sleeps == []


def test_bad_symbol_names_the_symbol(fake: FakeBinance) -> None:
    with pytest.raises(MarketDataError) as err:
        source(fake).fetch("DOGE-USDT", None)
    assert str(err.value) == "binance DOGE/USDT 1m: BadSymbol: binance does not have market symbol DOGE/USDT"
    assert fake.hits["/api/v3/klines"] == 0


@pytest.mark.parametrize(("value", "problem"), [
    ("abc", r"open is missing or not a number \(got None\)"), ("NaN", "open is nan"),
])
def test_malformed_rows_raise_candle_error(fake: FakeBinance, value: str, problem: str) -> None:
    t = int(LAST_CLOSED.timestamp() * 1000)
    fake.fail_next("/api/v3/klines", status=200, body=[[t, value, "2", "0.5", "1", "10", t + 59_999]])
    with pytest.raises(CandleError, match=rf"^binance BTC/USDT 1m: bar at 2026-01-01 11:59 UTC: {problem}$"):
        source(fake).fetch("BTC-USDT", LAST_CLOSED - timedelta(minutes=1))


def test_duplicate_and_unsorted_rows_are_cleaned(fake: FakeBinance) -> None:
    t = int(LAST_CLOSED.timestamp() * 1000)
    bar = ["100", "101", "99", "100.5", "3"]
    fake.fail_next("/api/v3/klines", status=200,
                   body=[[t, *bar], [t - 60_000, *bar], [t, *bar], [t - 120_000, *bar]])
    df = source(fake).fetch("BTC-USDT", LAST_CLOSED - timedelta(minutes=3))
    assert df["timestamp"].to_list() == [LAST_CLOSED - timedelta(minutes=m) for m in (2, 1, 0)]


def test_history_starts_at_listing(fake: FakeBinance) -> None:
    fake.listed_ms = int((NOW.replace(second=0) - timedelta(hours=2)).timestamp() * 1000)
    df = source(fake, history_days=7).fetch("BTC-USDT", None)
    assert df.height == 120
    assert fake.hits["/api/v3/klines"] == 1


def test_make_exchange_points_every_api_url_at_base_url() -> None:
    ex = make_exchange("binance", base_url="http://127.0.0.1:9", timeout_ms=1234)
    urls = ex.urls["api"]
    assert urls["public"] == "http://127.0.0.1:9/api/v3"
    assert urls["sapi"] == "http://127.0.0.1:9/sapi/v1"
    assert all(u.startswith("http://127.0.0.1:9/") for u in urls.values())
    assert ex.options["fetchMarkets"] == {"types": ["spot"]}
    assert ex.options["fetchCurrencies"] is False and ex.options["fetchMargins"] is False
    assert ex.enableRateLimit is True and ex.timeout == 1234
    assert not ex.apiKey and not ex.secret
    keyed = make_exchange("binance", api_key="k", secret="s")
    assert (keyed.apiKey, keyed.secret) == ("k", "s")
    assert "127.0.0.1" not in keyed.urls["api"]["public"]  # no base_url: ccxt's own URLs, untouched


def test_configuration_errors_are_one_line() -> None:
    with pytest.raises(MarketDataError, match=r"^unknown ccxt exchange 'nosuchx'$"):
        make_exchange("nosuchx")
    with pytest.raises(MarketDataError, match=r"^binance has no timeframe '7m'"):
        CcxtSource(exchange=ccxt.binance(), timeframe="7m")
    with pytest.raises(CandleError):
        CcxtSource(exchange=ccxt.binance(), timeframe="soon")


def test_symbol_mapping() -> None:
    assert to_ccxt_symbol("BTC-USDT") == "BTC/USDT"
    assert to_ccxt_symbol("ETH/USDT") == "ETH/USDT"


def test_from_settings_reads_the_ccxt_settings(fake: FakeBinance) -> None:
    env = {"NETTRACE_TIMEFRAME": "5m", "NETTRACE_CCXT_HISTORY_DAYS": "2", "NETTRACE_CCXT_MAX_RETRIES": "3"}
    src = CcxtSource.from_settings(load_settings(env), exchange=fake.exchange(), now=fake.now)
    assert (src.exchange_id, src.timeframe, src.history_days, src.max_retries) == ("binance", "5m", 2, 3)
    df = src.fetch("BTC-USDT", None)
    assert df.height == 2 * 288 and df["timestamp"][-1] == NOW.replace(minute=0, second=0) - timedelta(minutes=5)
