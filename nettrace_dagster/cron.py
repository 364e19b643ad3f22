"""Cron expressions for interval settings (one rule for every schedule)."""

from __future__ import annotations

from nettrace_dagster.settings import SettingsError


def every_minutes_cron(minutes: int, setting: str) -> str:
    """Cron for 'every N minutes' (N dividing 60) or whole hours (N a multiple of 60, up to a day)."""
    if minutes <= 0:
        raise SettingsError(f"{setting} must be positive, got {minutes}")
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and minutes <= 1440:
        hours = minutes // 60
        return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
    raise SettingsError(f"{setting}={minutes}: use a divisor of 60 or whole hours")
