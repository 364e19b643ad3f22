"""Partition definitions shared by every asset: one place decides what a symbol partition is."""

from __future__ import annotations

import dagster as dg

from nettrace_dagster.settings import load_settings

symbol_partitions = dg.StaticPartitionsDefinition(load_settings().symbols)
