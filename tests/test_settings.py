from pathlib import Path

import pytest

from nettrace_dagster.settings import SETTINGS, SettingsError, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_match_the_seed() -> None:
    s = load_settings({})
    assert s.param_opt_max_daily_loss_usd == 5.0
    assert s.regime_bull_threshold == 0.01 and s.regime_bear_threshold == -0.01
    assert s.market_source == "sim" and s.symbols == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert s.ledger_url.startswith("sqlite:///") and s.ledger_url.endswith("ledger.db")


def test_live_profile_defaults_to_ccxt() -> None:
    assert load_settings({"NETTRACE_PROFILE": "live"}).market_source == "ccxt"


@pytest.mark.parametrize("env, needle", [
    ({"NETTRACE_SIM_SEED": "six"}, "NETTRACE_SIM_SEED='six' is not a valid int"),
    ({"NETTRACE_PROFILE": "prod"}, "NETTRACE_PROFILE='prod': expected one of local, live"),
    ({"NETTRACE_LIVE_TRADING": "maybe"}, "NETTRACE_LIVE_TRADING"),
])
def test_bad_values_are_one_line_errors(env: dict, needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_slash_in_symbol_is_refused() -> None:
    with pytest.raises(SettingsError, match="BTC-USDT"):
        _ = load_settings({"NETTRACE_SYMBOLS": "BTC/USDT"}).symbols


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [s.name for s in SETTINGS if f"`{s.name}`" not in text]
    assert not missing, f"README's settings table lacks {missing}"


# --- Every setting has bounds, checked at load (issue 7, item 13) ---------------------------------

@pytest.mark.parametrize("name, raw, needle", [
    ("NETTRACE_INITIAL_CAPITAL_USD", "inf", "(0, 1000000000]"),
    ("NETTRACE_INITIAL_CAPITAL_USD", "1e308", "(0, 1000000000]"),
    ("NETTRACE_INITIAL_CAPITAL_USD", "-50", "(0, 1000000000]"),
    ("NETTRACE_INITIAL_CAPITAL_USD", "0", "(0, 1000000000]"),
    ("NETTRACE_INITIAL_CAPITAL_USD", "nan", "(0, 1000000000]"),
    ("NETTRACE_GAP_TOLERANCE", "nan", "[0, 1]"),
    ("NETTRACE_GAP_TOLERANCE", "1.5", "[0, 1]"),
    ("NETTRACE_SIM_BARS", "0", "[1, 10000000]"),
    ("NETTRACE_SIM_BARS", "-5", "[1, 10000000]"),
    ("NETTRACE_SIM_SEED", "-1", "[0, 4294967295]"),
    ("NETTRACE_REGIME_WINDOW", "0", "[2, 1000000]"),
    ("NETTRACE_REGIME_WINDOW", "1", "[2, 1000000]"),
    ("NETTRACE_TIMEFRAME", "7x", "1m, 5m"),
    ("NETTRACE_TIMEFRAME", "30s", "1 minute … 1 day"),
    ("NETTRACE_TIMEFRAME", "2d", "1 minute … 1 day"),
    ("NETTRACE_TIMEFRAME", "0m", "1 minute … 1 day"),
    ("NETTRACE_TRADING_TICK_MINUTES", "7", "must divide 60"),
    ("NETTRACE_TRADING_TICK_MINUTES", "0", "[1, 60]"),
    ("NETTRACE_TRADING_TICK_MINUTES", "120", "[1, 60]"),
    ("NETTRACE_CANDLES_REFRESH_MINUTES", "7", "divisor of 60"),
    ("NETTRACE_CANDLES_REFRESH_MINUTES", "0", "[1, 1440]"),
    ("NETTRACE_CCXT_HISTORY_DAYS", "0", "[1, 3650]"),
    ("NETTRACE_CCXT_MAX_RETRIES", "0", "[1, 100]"),
    ("NETTRACE_TRADER_CATCH_UP_BARS", "0", "[1, 1000000]"),
    ("NETTRACE_TRADER_CATCH_UP_BARS", "2.5", "not a whole number"),
    ("NETTRACE_RULE_MAX_DRAWDOWN", "nan", "finite number"),
    ("NETTRACE_RULE_MAX_DRAWDOWN", "lots", "not a number"),
    ("REGIME_BULL_THRESHOLD", "inf", "[-1, 1]"),
    ("REGIME_BEAR_THRESHOLD", "0.05", "must be below REGIME_BULL_THRESHOLD"),
    ("PARAM_OPT_MAX_DAILY_LOSS_USD", "-1", "(0, 1000000000]"),
    ("NETTRACE_HOME", "", "empty"),
])
def test_numbers_and_formats_are_checked_at_load(name: str, raw: str, needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({name: raw})
    assert str(err.value).startswith(name) and needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, raw", [
    ("NETTRACE_INITIAL_CAPITAL_USD", "1000000000"), ("NETTRACE_INITIAL_CAPITAL_USD", "0.01"),
    ("NETTRACE_GAP_TOLERANCE", "0"), ("NETTRACE_GAP_TOLERANCE", "1"), ("NETTRACE_TIMEFRAME", "1d"),
    ("NETTRACE_TIMEFRAME", "4h"), ("NETTRACE_TIMEFRAME", "15m"), ("NETTRACE_TRADING_TICK_MINUTES", "15"),
    ("NETTRACE_CANDLES_REFRESH_MINUTES", "120"), ("NETTRACE_TRADER_CATCH_UP_BARS", ""),
    ("NETTRACE_TRADER_CATCH_UP_BARS", "500"), ("NETTRACE_RULE_MAX_DRAWDOWN", "0.25"), ("NETTRACE_REGIME_WINDOW", "2"),
])
def test_edges_of_the_ranges_are_allowed(name: str, raw: str) -> None:
    load_settings({name: raw})


def test_every_number_has_a_range() -> None:
    numeric = [s for s in SETTINGS if s.kind in (int, float) or s.number is not None]
    assert numeric and all(s.bounds is not None for s in numeric), [s.name for s in numeric if s.bounds is None]
    assert load_settings({}).values  # every default is inside its own range


def test_symbols_are_canonical() -> None:
    assert load_settings({"NETTRACE_SYMBOLS": "btc-usdt, eth-usdt,"}).symbols == ["BTC-USDT", "ETH-USDT"]


def test_cli_exits_2_on_a_bad_number(home: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    from nettrace_dagster.cli import main

    monkeypatch.setenv("NETTRACE_INITIAL_CAPITAL_USD", "inf")
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "nettrace status: error: NETTRACE_INITIAL_CAPITAL_USD='inf': must be a finite number in (0, 1000000000]"
    assert not home.exists()
