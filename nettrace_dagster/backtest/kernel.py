"""The compiled simulation loop: one pass over the bars, long only, one position at a time.

Fill conventions (docs/strategies.md has the long form):
- A signal at bar i's close fills at bar i+1's open (signals at the last bar never fill). When an
  entry and an exit arrive together, the exit wins (flat: nothing happens).
- Stops and take-profit levels are live from the entry bar on (its high and low come after its
  open). The stop is checked first: if the bar's range could have hit both, the stop is taken.
  A bar that opens through a level fills at the open (gap), otherwise at the level.
- The trailing stop's peak is the entry price and the highs of the *completed* bars since entry:
  within a bar the order of high and low is unknown, so the bar's high raises the level from the
  next bar on (the ratchet never lowers it).
- Buys fill at price × (1 + slippage), sells at price × (1 − slippage) (stops and targets too).
  Fees are a fraction of each fill's notional, per side.
- Equity is marked at each bar's close; an open position at the end stays open (marked to market).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

REASON_SIGNAL = 0
REASON_STOP = 1
REASON_TRAIL = 2
REASON_TARGET = 3
REASON_OPEN = 4
REASON_NAMES = ("signal", "stop_loss", "trailing_stop", "take_profit", "open")

# Inputs: OHLC float64 arrays, and the signals as sorted int64 bar indices: `entry_idx` the bars
# whose (gated) entry signal is not cancelled by an exit on the same bar, `exit_idx` the bars with
# an exit signal. Sparse signals make flat stretches cost nothing.

# Indices of the stats vector the kernel returns.
S_CASH, S_UNITS, S_TRADES, S_CLOSED, S_WINS, S_GROSS_PROFIT, S_GROSS_LOSS = 0, 1, 2, 3, 4, 5, 6
S_SUM_R, S_SUMSQ_R, S_SUMDOWN_SQ, S_MAX_DD, S_EXPOSURE, S_FEES, S_FINAL_EQUITY, S_PEAK = (
    7, 8, 9, 10, 11, 12, 13, 14)
N_STATS = 15


PREFETCH_AHEAD = 4  # entries ahead whose first bars are prefetched (a trade start is a DRAM miss)
PREFETCH_BARS = 64


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to load arr[idx]'s cache line (llvm.prefetch, read, high locality)."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):
        arrty = signature.args[0]
        ary = context.make_array(arrty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, arrty, ary, [args[1]], wraparound=False)
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(inline="always")
def _mark(eq, prev, sum_r, sumsq_r, sumdown, peak_eq, max_dd):
    """Accumulate a bar where something filled (or the position opened): exact, with divisions."""
    r = eq / prev - 1.0
    dn = min(r, 0.0)
    peak_eq = max(peak_eq, eq)
    if eq < peak_eq * (1.0 - max_dd):
        max_dd = 1.0 - eq / peak_eq
    return sum_r + r, sumsq_r + r * r, sumdown + dn * dn, peak_eq, max_dd


@nb.njit(inline="always")
def _walk(low, high, close, growth, k, end, cash, units, stop_level, peak, trail_mult, next_lv,
          need_high, prev, sum_r, sumsq_r, sumdown, peak_eq, max_dd, rec):
    """The hot loop: walk held bars from k while nothing can fill (low above the stop, high below
    the next target), accumulating returns. Returns at the first bar where something may fill
    (not yet accumulated) or at `end`. Kept small so its state lives in registers, and free of
    divisions where it can be:
    - all-in (no cash), the bar's return is the close's precomputed growth (no division);
    - drawdown: the running peak, and a branch taken only when equity falls below
      peak × (1 − max_dd) — a new maximum drawdown — which divides and stores the record (the
      store keeps LLVM from turning it into a division on every bar)."""
    all_in = cash == 0.0
    keep = 1.0 - max_dd
    eq = prev
    if all_in and not need_high:
        # fixed stop level, equity = units × close: the tightest loop (unsigned indices skip
        # numba's negative-index wraparound)
        level = stop_level
        while k < end:
            u = np.uint64(k)
            if low[u] <= level:
                break
            eq = units * close[u]
            r = growth[u] - 1.0
            dn = min(r, 0.0)
            sum_r += r
            sumsq_r += r * r
            sumdown += dn * dn
            peak_eq = max(peak_eq, eq)
            if eq < peak_eq * keep:
                keep = eq / peak_eq
                rec[0] = keep
            k += 1
    else:
        while k < end:
            u = np.uint64(k)
            level = max(stop_level, peak * trail_mult)
            if low[u] <= level:
                break
            if need_high:
                hi = high[u]
                if hi >= next_lv:
                    break
                peak = max(peak, hi)
            eq = cash + units * close[u]
            if all_in:
                g = growth[u]
            else:
                g = eq / prev
                prev = eq
            r = g - 1.0
            dn = min(r, 0.0)
            sum_r += r
            sumsq_r += r * r
            sumdown += dn * dn
            peak_eq = max(peak_eq, eq)
            if eq < peak_eq * keep:
                keep = eq / peak_eq
                rec[0] = keep
            k += 1
    max_dd = 1.0 - keep
    return k, peak, eq, sum_r, sumsq_r, sumdown, peak_eq, max_dd


@nb.njit(inline="always")
def _simulate(open_, high, low, close, growth, entry_idx, exit_idx,
              init_cash, fee, slip, size_frac, stop_loss, trail, tp0, tp1, tp2, f0, f1, f2,
              record, equity_out, t_entry_bar, t_entry_price, t_units, t_exit_bar, t_exit_price,
              t_pnl, t_reason):
    n = close.shape[0]
    m_e = entry_idx.shape[0]
    m_x = exit_idx.shape[0]
    stats = np.zeros(N_STATS)
    rec = np.zeros(1)  # the branch that records a new drawdown stores here: keeps it a branch
    cash = init_cash
    buy_mult = 1.0 + slip
    sell_mult = 1.0 - slip
    trail_mult = 1.0 - trail if trail > 0.0 else 0.0
    need_high = trail > 0.0 or tp0 > 0.0 or tp1 > 0.0 or tp2 > 0.0
    all_in = size_frac >= 1.0
    inf = np.inf
    n_trades = 0
    n_closed = 0
    n_wins = 0
    gross_profit = 0.0
    gross_loss = 0.0
    fees_paid = 0.0
    sum_r = 0.0
    sumsq_r = 0.0
    sumdown = 0.0
    peak_eq = init_cash
    max_dd = 0.0
    exposure = 0
    prev = init_cash
    units = 0.0
    in_pos = False
    ei = 0
    xi = 0
    xa = 0
    i = 0  # first bar not yet processed; flat at its open
    while True:
        # ---- flat: the next entry signal s >= i - 1 fills at bar j = s + 1 ----
        while ei < m_e and entry_idx[ei] < i - 1:
            ei += 1
        if ei == m_e:
            break
        j = entry_idx[ei] + 1
        ei += 1
        if j >= n:
            break
        # Prefetch the bars of the trade PREFETCH_AHEAD entries ahead (up to its exit signal, at
        # most PREFETCH_BARS): a trade starts after a jump, where the hardware prefetcher is cold.
        if ei + PREFETCH_AHEAD - 1 < m_e:
            b = entry_idx[ei + PREFETCH_AHEAD - 1] + 1
            while xa < m_x and exit_idx[xa] < b:
                xa += 1
            last = min(b + PREFETCH_BARS, n)
            if xa < m_x:
                last = min(last, exit_idx[xa] + 2)
            last = max(last - 1, b)
            # four evenly spread lines per array (a short trade spans a few lines; the hardware
            # prefetcher takes over in long ones): straight-line code, no loop to mispredict
            step = (last - b) // 3
            for q in (b, b + step, b + 2 * step, last):
                _prefetch(open_, q)
                _prefetch(low, q)
                _prefetch(close, q)
                _prefetch(growth, q)
                if need_high:
                    _prefetch(high, q)
        if record:
            for k in range(i, j):
                equity_out[k] = cash
        px = open_[j] * buy_mult
        budget = cash if all_in else min(cash, size_frac * cash)
        notional = budget / (1.0 + fee)
        u = notional / px
        if not u > 0.0:
            i = j
            continue
        fees_paid += budget - notional
        cash = 0.0 if all_in else cash - budget
        units = u
        entry_units = u
        entry_cost = budget
        proceeds = 0.0
        exit_value = 0.0
        in_pos = True
        stop_level = px * (1.0 - stop_loss) if stop_loss > 0.0 else 0.0
        peak = px
        lv0 = px * (1.0 + tp0) if tp0 > 0.0 else inf
        lv1 = px * (1.0 + tp1) if tp1 > 0.0 else inf
        lv2 = px * (1.0 + tp2) if tp2 > 0.0 else inf
        next_lv = min(lv0, min(lv1, lv2))
        if record:
            t_entry_bar[n_trades] = j
            t_entry_price[n_trades] = px
            t_units[n_trades] = u
        n_trades += 1
        # ---- the exit signal that would close it: first exit signal t >= j fills at t + 1 ----
        while xi < m_x and exit_idx[xi] < j:
            xi += 1
        end = exit_idx[xi] + 1 if xi < m_x else n
        walk_end = min(end, n)
        reason = REASON_SIGNAL
        closed = False
        # the entry bar is marked here: its growth is against the pre-entry equity
        k = j
        while k < walk_end:
            if k > j:
                k0 = k
                k, peak, prev, sum_r, sumsq_r, sumdown, peak_eq, max_dd = _walk(
                    low, high, close, growth, k, walk_end, cash, units, stop_level, peak, trail_mult,
                    next_lv, need_high, prev, sum_r, sumsq_r, sumdown, peak_eq, max_dd, rec)
                if record:  # equity of the walked bars: cash and units were constant there
                    for m in range(k0, k):
                        equity_out[m] = cash + units * close[m]
                if k >= walk_end:
                    break
            level = max(stop_level, peak * trail_mult)
            if low[k] <= level:
                o = open_[k]
                value = units * (o if o <= level else level) * sell_mult
                f = value * fee
                proceeds += value - f
                fees_paid += f
                exit_value += value
                cash += value - f
                units = 0.0
                closed = True
                reason = REASON_TRAIL if level > stop_level else REASON_STOP
            elif need_high:
                hi = high[k]
                if hi >= next_lv:
                    o = open_[k]
                    for t in range(3):
                        if t == 0:
                            lv, fr = lv0, f0
                        elif t == 1:
                            lv, fr = lv1, f1
                        else:
                            lv, fr = lv2, f2
                        if hi < lv:
                            continue
                        if t == 0:
                            lv0 = inf
                        elif t == 1:
                            lv1 = inf
                        else:
                            lv2 = inf
                        q = fr * entry_units
                        if q >= units * (1.0 - 1e-9):
                            q = units
                        value = q * (o if o >= lv else lv) * sell_mult
                        f = value * fee
                        proceeds += value - f
                        fees_paid += f
                        exit_value += value
                        cash += value - f
                        units -= q
                        if units <= 0.0:
                            units = 0.0
                            closed = True
                            reason = REASON_TARGET
                            break
                    next_lv = min(lv0, min(lv1, lv2))
                peak = max(peak, hi)
            eq = cash + units * close[k]
            sum_r, sumsq_r, sumdown, peak_eq, max_dd = _mark(eq, prev, sum_r, sumsq_r, sumdown, peak_eq, max_dd)
            prev = eq
            if record:
                equity_out[k] = eq
            if closed:
                break
            k += 1
        if not closed and end < n:
            k = end
            value = units * open_[k] * sell_mult
            f = value * fee
            proceeds += value - f
            fees_paid += f
            exit_value += value
            cash += value - f
            units = 0.0
            closed = True
            sum_r, sumsq_r, sumdown, peak_eq, max_dd = _mark(cash, prev, sum_r, sumsq_r, sumdown, peak_eq,
                                                             max_dd)
            prev = cash
            if record:
                equity_out[k] = cash
        if not closed:
            exposure += n - j
            if record:
                mark = units * close[n - 1]
                t_exit_bar[n_closed] = n - 1
                t_exit_price[n_closed] = (exit_value + mark) / entry_units
                t_pnl[n_closed] = proceeds + mark - entry_cost
                t_reason[n_closed] = REASON_OPEN
            i = n
            break
        in_pos = False
        exposure += k - j
        pnl = proceeds - entry_cost
        n_wins += pnl > 0.0  # branch-free: a trade's sign is a coin flip to the predictor
        gross_profit += max(pnl, 0.0)
        gross_loss += max(-pnl, 0.0)
        if record:
            t_exit_bar[n_closed] = k
            t_exit_price[n_closed] = exit_value / entry_units
            t_pnl[n_closed] = pnl
            t_reason[n_closed] = reason
        n_closed += 1
        i = k + 1
    if record:
        for k in range(i, n):
            equity_out[k] = cash
    stats[S_CASH] = cash
    stats[S_UNITS] = units if in_pos else 0.0
    stats[S_TRADES] = n_trades
    stats[S_CLOSED] = n_closed
    stats[S_WINS] = n_wins
    stats[S_GROSS_PROFIT] = gross_profit
    stats[S_GROSS_LOSS] = gross_loss
    stats[S_SUM_R] = sum_r
    stats[S_SUMSQ_R] = sumsq_r
    stats[S_SUMDOWN_SQ] = sumdown
    stats[S_MAX_DD] = max_dd
    stats[S_EXPOSURE] = exposure
    stats[S_FEES] = fees_paid
    stats[S_FINAL_EQUITY] = prev
    stats[S_PEAK] = peak_eq
    return stats


@nb.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def simulate_stats_nb(open_, high, low, close, growth, entry_idx, exit_idx,
                      init_cash, fee, slip, size_frac, stop_loss, trail, tp0, tp1, tp2, f0, f1, f2):
    """Stats only (sweeps, optimizers): no equity curve, no trade list."""
    ef = np.empty(0)
    ei = np.empty(0, dtype=np.int64)
    return _simulate(open_, high, low, close, growth, entry_idx, exit_idx,
                     init_cash, fee, slip, size_frac, stop_loss, trail, tp0, tp1, tp2, f0, f1, f2,
                     False, ef, ei, ef, ef, ei, ef, ef, ei)


@nb.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def simulate_record_nb(open_, high, low, close, growth, entry_idx, exit_idx,
                       init_cash, fee, slip, size_frac, stop_loss, trail, tp0, tp1, tp2, f0, f1, f2,
                       equity_out, t_entry_bar, t_entry_price, t_units, t_exit_bar, t_exit_price,
                       t_pnl, t_reason):
    """Stats plus `equity_out[n]` and the trade arrays (length >= len(entry_idx) + 1)."""
    return _simulate(open_, high, low, close, growth, entry_idx, exit_idx,
                     init_cash, fee, slip, size_frac, stop_loss, trail, tp0, tp1, tp2, f0, f1, f2,
                     True, equity_out, t_entry_bar, t_entry_price, t_units, t_exit_bar, t_exit_price,
                     t_pnl, t_reason)
