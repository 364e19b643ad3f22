from pathlib import Path

import pytest

from nettrace_dagster.settings import SETTINGS, SettingsError, load_settings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_match_the_seed() -> None:
    s = load_settings({})
    assert s.param_opt_interval_hours == 6
    assert s.param_opt_cold_lookback_days == 7
    assert s.param_opt_max_daily_loss_usd == 5.0
    assert s.regime_bull_threshold == 0.01 and s.regime_bear_threshold == -0.01
    assert s.discovery_arxiv_enabled is True
    assert s.opportunity_min_score_for_submission == 0.65
    assert s.market_source == "sim" and s.symbols == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
    assert s.ledger_url.startswith("sqlite:///") and s.ledger_url.endswith("ledger.db")


def test_live_profile_defaults_to_ccxt() -> None:
    assert load_settings({"NETTRACE_PROFILE": "live"}).market_source == "ccxt"


@pytest.mark.parametrize("env, needle", [
    ({"PARAM_OPT_INTERVAL_HOURS": "six"}, "PARAM_OPT_INTERVAL_HOURS='six' is not a valid int"),
    ({"NETTRACE_PROFILE": "prod"}, "NETTRACE_PROFILE='prod': expected one of local, live"),
    ({"DISCOVERY_ARXIV_ENABLED": "maybe"}, "DISCOVERY_ARXIV_ENABLED"),
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
