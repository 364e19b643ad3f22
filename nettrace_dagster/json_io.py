"""An IO manager for asset values that are JSON documents (lists of records), not frames.

`validated_strategies` is a list of dicts a person reads in the UI and the promotion pipeline
reads as candidates; JSON keeps it readable on disk (`lake/<asset>.json`), written atomically
(temp file + rename) like the Parquet assets.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg


class JsonIOManager(dg.ConfigurableIOManager):
    """Stores each asset's value as `<base_dir>/<asset key path>.json`."""

    base_dir: str

    def _path(self, key: dg.AssetKey) -> Path:
        return Path(self.base_dir).joinpath(*key.path).with_suffix(".json")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self._path(context.asset_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(obj, fh, indent=1, default=str)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_input(self, context: dg.InputContext) -> Any:
        """The stored document; an empty list for an asset never materialized (nothing yet)."""
        path = self._path(context.asset_key)
        if not path.exists():
            context.log.warning(f"{context.asset_key.to_user_string()} was never materialized: reading it as []")
            return []
        return json.loads(path.read_text(encoding="utf-8"))
