"""PNG charts for Dagster metadata (a picture says more than a number in the UI)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
from dagster import MetadataValue

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REGIME_COLOURS = {"BULL": "#2ca02c", "BEAR": "#d62728", "SIDEWAYS": "#bbbbbb"}
MAX_POINTS = 2_000


@cache
def pyplot() -> Any:
    """matplotlib.pyplot, imported on the first chart: importing it costs ~0.5 s, and most
    processes that load the code location (code servers, daemons, run launchers, the CLI) draw nothing."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt

    return plt


def png_markdown(fig: Figure, alt: str) -> MetadataValue:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    pyplot().close(fig)
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})")


def price_with_regimes(timestamps: Sequence, close: np.ndarray, regimes: Sequence[str] | None,
                       title: str) -> MetadataValue:
    """Close price with each regime's stretch shaded."""
    step = max(len(close) // MAX_POINTS, 1)
    x, y = np.asarray(timestamps)[::step], np.asarray(close)[::step]
    fig, ax = pyplot().subplots(figsize=(9, 3))
    ax.plot(x, y, lw=0.8, color="black")
    if regimes is not None and len(regimes):
        labels = np.asarray(regimes)[::step]
        start = 0
        for i in range(1, len(labels) + 1):
            if i == len(labels) or labels[i] != labels[start]:
                colour = REGIME_COLOURS.get(str(labels[start]))
                if colour:
                    ax.axvspan(x[start], x[min(i, len(x) - 1)], color=colour, alpha=0.25, lw=0)
                start = i
        handles = [pyplot().Rectangle((0, 0), 1, 1, color=c, alpha=0.4) for c in REGIME_COLOURS.values()]
        ax.legend(handles, list(REGIME_COLOURS), loc="upper left", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return png_markdown(fig, title)


def line_chart(x: Sequence, series: dict[str, np.ndarray], title: str) -> MetadataValue:
    fig, ax = pyplot().subplots(figsize=(9, 3))
    for name, values in series.items():
        step = max(len(values) // MAX_POINTS, 1)
        ax.plot(np.asarray(x)[::step], np.asarray(values)[::step], lw=0.9, label=name)
    if len(series) > 1:
        ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    return png_markdown(fig, title)


def _literal(text: str) -> str:
    """Text shown as written: matplotlib reads a pair of `$` as math ("$100 → $98" would lose both)."""
    return text.replace("$", r"\$")


def equity_story(timestamps: Sequence, equity: np.ndarray, principal: float, title: str,
                 entries: tuple[Sequence, Sequence] = ((), ()), exits: tuple[Sequence, Sequence] = ((), ()),
                 hardstop: object | None = None, hardstop_label: str = "HARDSTOP") -> MetadataValue:
    """An account's equity in market time: the curve from the starting capital (dotted line),
    entries ▲ and exits ▼ at their bars' times and equity, and a HARDSTOP line when one latched.
    `entries` / `exits` are (times, equity values)."""
    fig, ax = pyplot().subplots(figsize=(9, 3.2))
    x, y = np.asarray(timestamps), np.asarray(equity, dtype=float)
    step = max(len(y) // MAX_POINTS, 1)
    keep = np.r_[np.arange(0, len(y), step), len(y) - 1] if len(y) else np.arange(0)
    ax.plot(x[keep], y[keep], lw=0.9, color="#1f77b4", label="equity")
    ax.axhline(principal, color="grey", lw=0.7, ls=":", label=_literal(f"start ${principal:,.2f}"))
    for (tx, ty), marker, colour, name in ((entries, "^", "#2ca02c", "entry"), (exits, "v", "#d62728", "exit")):
        if len(tx):
            ax.scatter(np.asarray(tx), np.asarray(ty, dtype=float), marker=marker, color=colour, s=28, zorder=3,
                       label=f"{name} ({len(tx)})")
    if hardstop is not None:
        ax.axvline(hardstop, color="black", lw=1.2, ls="--", label=_literal(hardstop_label))
    ax.legend(fontsize=7, loc="best")
    ax.set_title(_literal(title), fontsize=9)
    ax.set_ylabel("USD", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.autofmt_xdate()
    return png_markdown(fig, title)


def equity_panels(panels: dict[str, tuple[Sequence, dict[str, np.ndarray]]], ylabel: str, alt: str,
                  max_points: int = 2_000, buy_and_hold: dict[str, np.ndarray] | None = None) -> MetadataValue:
    """One panel per key (e.g. a symbol), one line per named series over its timestamps; with
    `buy_and_hold` (the key's close prices), a dashed line for holding from the first bar, scaled
    to start where the series start (1 for equity / initial)."""
    fig, axes = pyplot().subplots(len(panels), 1, figsize=(9, 2.4 * len(panels)), squeeze=False, sharex=False)
    for ax, (title, (x, series)) in zip(axes[:, 0], panels.items(), strict=True):
        ts = np.asarray(x)
        for name, values in series.items():
            step = max(len(values) // max_points, 1)
            ax.plot(ts[::step], np.asarray(values)[::step], lw=0.9, label=name)
        close = None if buy_and_hold is None else buy_and_hold.get(title)
        if close is not None and len(close) and close[0] > 0:
            start = float(np.asarray(next(iter(series.values())))[0]) if series else 1.0
            hold = np.asarray(close, dtype=float) / float(close[0]) * start
            step = max(len(hold) // max_points, 1)
            ax.plot(ts[::step], hold[::step], lw=1.0, ls="--", color="black", label="buy & hold")
        ax.set_title(f"{title}: {ylabel}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return png_markdown(fig, alt)


def markdown_table(rows: list[dict], float_digits: int = 4) -> MetadataValue:
    """A small markdown table for the UI (no pandas needed)."""
    if not rows:
        return MetadataValue.md("(empty)")
    cols = list(rows[0])

    def cell(v: object) -> str:
        return f"{v:.{float_digits}g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return MetadataValue.md("\n".join(lines))
