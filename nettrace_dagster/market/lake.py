"""The Parquet lake: where every asset's data lives on disk, and how it is written safely.

Layout (the same one `dagster_polars.PolarsParquetIOManager` uses, so Dagster and plain Python
read the same files): `<lake>/<asset>/<partition>.parquet`, or `<lake>/<asset>.parquet`.
Writes go to a temporary file that is renamed over the old one, so a crash mid-write never
leaves a torn file behind: the previous version stays readable.

Asset and partition names become path components, so they are checked to be one plain name
(no `..`, `/`, control characters) before any path is built; a stored file that cannot be read is
a one-line `LakeError` naming it, never a polars traceback.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from dagster import InputContext, OutputContext
from dagster_polars import PolarsParquetIOManager
from upath import UPath

from nettrace_dagster.market.schema import CandleError

try:
    from polars.exceptions import PanicException
except ImportError:  # pragma: no cover - older polars: pyo3's own class
    PanicException = BaseException  # type: ignore[assignment,misc]

# One path component: what a symbol, an asset or a partition key may look like on disk.
_COMPONENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=-]{0,127}")  # fullmatch: `$` lets "x\n" through


class LakeError(CandleError):
    """A lake path or file that cannot be used; one line naming it. (A CandleError, so every
    caller that already reports bad candles in one line reports this too.)"""


def write_parquet_atomic(df: pl.DataFrame, path: Path, **kwargs: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.write_parquet(tmp, **kwargs)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(exc):  # polars reports it as a ComputeError with a multi-line IO error
            raise LakeError(f"{path}: no space left on the device; nothing was replaced (the stored version "
                            "is still readable): free space and run it again") from None
        raise


def _disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return "os error 28" in str(exc) or "No space left on device" in str(exc)


class Lake:
    """Read access to the lake by asset name and partition."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, asset: str, partition: str | None = None) -> Path:
        for what, name in (("asset", asset), ("partition", partition)):
            if name is not None and (not _COMPONENT.fullmatch(name) or ".." in name):
                raise LakeError(f"{what} {name!r} is not a plain name (letters, digits, _ . = -)")
        return self.root / asset / f"{partition}.parquet" if partition else self.root / f"{asset}.parquet"

    def exists(self, asset: str, partition: str | None = None) -> bool:
        return self.path(asset, partition).exists()

    def read(self, asset: str, partition: str | None = None) -> pl.DataFrame:
        path = self.path(asset, partition)
        if not path.exists():
            what = f"{asset}[{partition}]" if partition else asset
            raise FileNotFoundError(f"{what} is not in the lake at {path}; materialize it first")
        try:
            return pl.read_parquet(path)
        except (Exception, PanicException) as exc:  # polars raises several kinds for a damaged file
            first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise LakeError(f"{path} is unreadable ({first}); move it aside or restore it from a backup"
                            ) from None

    def read_candles(self, symbol: str) -> pl.DataFrame:
        return self.read("candles", symbol)

    def quarantine(self, asset: str, partition: str, df: pl.DataFrame) -> Path:
        """Keep rejected data for inspection, out of the lake's views (folders starting with _)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        path = self.root / "_quarantine" / asset / f"{partition}-{stamp}.parquet"
        write_parquet_atomic(df, path)
        return path

    def partitions(self, asset: str) -> list[str]:
        folder = self.root / asset
        return sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []


class AtomicParquetIOManager(PolarsParquetIOManager):
    """`PolarsParquetIOManager` whose local writes are atomic (temp file + rename).

    Local reads use `pl.scan_parquet` directly: dagster-polars 0.27 still passes `rechunk=`,
    which polars 2 removed.
    """

    def scan_df_from_path(self, path: UPath, context: InputContext,
                          partition_key: str | None = None) -> pl.LazyFrame:
        if getattr(path, "protocol", "") not in ("", "file", "local"):
            return super().scan_df_from_path(path, context, partition_key)
        return pl.scan_parquet(str(path))

    def write_df_to_path(self, context: OutputContext, df: pl.DataFrame, path: UPath) -> None:
        if getattr(path, "protocol", "") not in ("", "file", "local"):
            return super().write_df_to_path(context, df, path)
        write_parquet_atomic(df, Path(str(path)), compression="zstd")
