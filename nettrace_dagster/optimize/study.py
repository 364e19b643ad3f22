"""One Optuna study per regime: TPE (seeded) over the search space, the portfolio backtest as the
objective on the in-sample bars of that regime, safety constraints through `constraints_func`,
then the overfitting gate on the held-out bars.

Storage is any Optuna RDB URL: SQLite under NETTRACE_HOME by default, PostgreSQL
(`PARAM_OPT_STORAGE_URL`) to let several processes or machines search one study — the study's
name is derived from the data and the space, so every worker of one round joins the same study,
and the round stops when the study holds `n_trials` finished trials, whoever ran them.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import optuna
import polars as pl
import sqlalchemy
import sqlalchemy.event
import sqlalchemy.exc

from nettrace_dagster.optimize import gate as G
from nettrace_dagster.optimize.paramset import ParamSet, default_param_set
from nettrace_dagster.optimize.portfolio import (
    PortfolioResult,
    SignalCache,
    portfolio_backtest,
    returns_metrics,
    union_timeline,
)
from nettrace_dagster.optimize.space import (
    Dim,
    param_set_from_trial_params,
    portfolio_space,
    strategy_space,
    suggest_param_set,
)
from nettrace_dagster.optimize.tpe_numerics import compiled_truncnorm
from nettrace_dagster.rules import Rules
from nettrace_dagster.strategies.base import Strategy
from nettrace_dagster.strategies.indicators import Memo, memoized

MEMO_BYTES = 512 * 2**20  # a million bars' window of one indicator is 8 MB: ~60 windows
N_BLOCKS = 16  # CSCV blocks: C(16, 8) = 12,870 splits, as in Bailey et al.


@dataclass(frozen=True)
class Constraints:
    """Safety constraints a trial must meet to be a candidate at all (Optuna: feasible ≤ 0)."""

    max_drawdown: float = 0.08  # the guardrail's own drawdown line: a set that breaks it is rolled back
    min_sharpe: float = 0.0  # a losing set is no candidate
    max_sharpe: float = 100.0  # an annualised Sharpe beyond this is a leak or a bug, not an edge
    min_win_rate: float = 0.40  # Rule 2's own floor (once there are enough trades to judge)
    win_rate_min_trades: int = 10

    def values(self, sharpe: float, mdd: float, win_rate: float, trades: int) -> list[float]:
        wr = (self.min_win_rate - win_rate) if trades >= self.win_rate_min_trades else -1.0
        return [mdd - self.max_drawdown, self.min_sharpe - sharpe, sharpe - self.max_sharpe, wr]


CONSTRAINT_NAMES = ("max_drawdown", "min_sharpe", "max_sharpe", "min_win_rate")


@dataclass
class StudyConfig:
    regime: str
    n_trials: int = 40
    seed: int = 7
    storage: str | None = None  # an Optuna RDB URL; None = in memory
    initial_cash: float = 100.0
    oos_fraction: float = 0.3
    n_folds: int = 3
    rules: Rules | None = None
    thresholds: G.GateThresholds = field(default_factory=G.GateThresholds)
    constraints: Constraints = field(default_factory=Constraints)
    strategies: Mapping[str, type[Strategy]] | None = None  # default: the registry's
    study_prefix: str = "nettrace"
    worker: int = 0  # seeds this process's sampler differently from its fellow workers
    search_portfolio: bool = True  # False: the nine portfolio numbers stay at today's (strategies only)


@dataclass
class OptimizationOutcome:
    regime: str
    param_set: ParamSet
    trials: int
    in_sample_sharpe: float
    in_sample_return: float
    out_of_sample_sharpe: float
    out_of_sample_return: float
    dsr: float
    pbo: float
    verdict: G.GateVerdict
    study: str
    history: list[tuple[int, float]]  # (trial number, value) of finished trials
    oos_bars: int = 0
    oos_trades: int = 0
    fold_returns: list[float] = field(default_factory=list)
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def to_value(self) -> dict[str, Any]:
        """The `optimized_params` asset's value (what the `candidates` asset reads)."""
        return {"regime": self.regime, "param_set": self.param_set.to_json(),
                "param_set_id": self.param_set.content_id(), "trials": self.trials,
                "in_sample_sharpe": self.in_sample_sharpe, "out_of_sample_sharpe": self.out_of_sample_sharpe,
                "out_of_sample_return": self.out_of_sample_return, "dsr": self.dsr, "pbo": self.pbo,
                "passed": self.verdict.passed, "failed_tests": self.verdict.failed_tests,
                "gate": [t.to_dict() for t in self.verdict.tests], "study": self.study,
                "finished_at": self.finished_at}


def storage_url(url: str) -> str:
    """SQLAlchemy URL with the psycopg 3 driver for plain `postgresql://` (psycopg2 is not installed)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage that does not wait for the disk at every commit (Optuna commits each
    parameter of each trial): SQLite in WAL mode with synchronous=NORMAL, PostgreSQL with
    synchronous_commit=off. A crash can lose the last moments of trials, never corrupt the study;
    the parameters in force live in the ledger, not here."""
    url = storage_url(url)
    engine_kwargs: dict[str, Any] = {}
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        options = str(parsed.query.get("options", "") or "")
        engine_kwargs["connect_args"] = {"options": f"{options} -c synchronous_commit=off".strip()}
    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    if parsed.get_backend_name() == "sqlite":
        @sqlalchemy.event.listens_for(storage.engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        storage.engine.dispose()  # connections opened while creating the tables lack the pragmas
    return storage


def regime_mask(timeline: np.ndarray, candles: dict[str, pl.DataFrame], labels: dict[str, np.ndarray],
                regime: str) -> np.ndarray:
    """True at timeline bars labelled `regime`: by the symbols' majority (ties: the first symbol)."""
    votes = np.zeros(timeline.shape[0])
    first = None
    for symbol in sorted(candles):
        ts = candles[symbol]["timestamp"].dt.epoch("ms").to_numpy()
        idx = np.searchsorted(ts, timeline)
        ok = (idx < ts.shape[0]) & (ts[np.minimum(idx, ts.shape[0] - 1)] == timeline)
        lab = np.asarray(labels.get(symbol, np.full(ts.shape[0], "UNKNOWN")))
        # numpy strings compare as the str objects would, without making a million of them
        is_regime = (lab == regime) if lab.dtype.kind == "U" else (np.asarray(lab, dtype=object) == regime)
        hit = ok & is_regime[np.minimum(idx, ts.shape[0] - 1)]
        votes += np.where(ok, np.where(hit, 1.0, -1.0), 0.0)
        first = hit if first is None else first
    return (votes > 0) | ((votes == 0) & first) if first is not None else np.zeros(timeline.shape[0], bool)


def split_in_sample(candles: dict[str, pl.DataFrame], oos_fraction: float) -> tuple[dict[str, pl.DataFrame], int]:
    """The bars before the split time (what the search may see) and the split time (ms): the last
    `oos_fraction` of the union timeline is held out before the study starts."""
    times = union_timeline([df["timestamp"].dt.epoch("ms").to_numpy() for df in candles.values()])
    cut = int(times[min(len(times) - 1, max(1, int(len(times) * (1.0 - oos_fraction))))])
    ins = {s: df.filter(pl.col("timestamp").dt.epoch("ms") < cut) for s, df in candles.items()}
    return ins, cut


def study_name(cfg: StudyConfig, candles: dict[str, pl.DataFrame], space: Any) -> str:
    fingerprint = json.dumps({
        "bars": {s: [df.height, str(df["timestamp"].max())] for s, df in sorted(candles.items())},
        "space": repr(space), "oos": cfg.oos_fraction, "cash": cfg.initial_cash, "seed": cfg.seed,
        "constraints": repr(cfg.constraints), "rules": repr(cfg.rules)}, sort_keys=True)
    return f"{cfg.study_prefix}-{cfg.regime}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


class Objective:
    """The in-sample portfolio backtest of one trial, scored on the regime's bars."""

    def __init__(self, cfg: StudyConfig, ins: dict[str, pl.DataFrame], labels: dict[str, np.ndarray],
                 space: tuple[dict[str, Dim], dict[str, dict[str, Dim]]]) -> None:
        self.cfg, self.ins, self.space = cfg, ins, space
        self.cache = SignalCache()
        # indicators and evidence families by window, shared by every trial (the candles are fixed)
        self.memo = Memo(MEMO_BYTES)
        self.strategies = {name: cls() for name, cls in (cfg.strategies or {}).items()}
        self.mask: np.ndarray | None = None
        self.every_bar = False
        self.labels = labels

    def run(self, ps: ParamSet) -> tuple[PortfolioResult, np.ndarray]:
        res, r, _ = self.scored(ps)
        return res, r

    def scored(self, ps: ParamSet) -> tuple[PortfolioResult, np.ndarray, tuple[float, float, float]]:
        """The backtest, its returns on the regime's bars and their (Sharpe, return, drawdown)."""
        with memoized(memo=self.memo):
            res = portfolio_backtest(self.ins, ps, initial_cash=self.cfg.initial_cash, rules=self.cfg.rules,
                                     strategies=self.strategies or None, cache=self.cache)
        if self.mask is None:
            self.mask = regime_mask(res.timestamps, self.ins, self.labels, self.cfg.regime)
            self.every_bar = bool(self.mask.all())
        if self.every_bar and res.positive and res.returns is not None:
            # every bar is the regime's and the equity never hit 0: the backtest scored these returns
            return res, res.returns, (res.sharpe, res.total_return, res.max_drawdown)
        r = res.bar_returns()[self.mask]
        return res, r, returns_metrics(r, res.periods_per_year)

    def __call__(self, trial: optuna.Trial) -> float:
        ps = suggest_param_set(trial, self.space)
        res, r, (sharpe, total, mdd) = self.scored(ps)
        values = self.cfg.constraints.values(sharpe, mdd, res.win_rate, res.trades)
        # one write each (a shared PostgreSQL storage commits every attribute): feasible iff every
        # constraint is ≤ 0, i.e. iff the largest is
        trial.set_constraint("safety", max(values))
        trial.set_user_attr("eval", {"constraint": values, "return": total, "trades": res.trades,
                                     "worker": self.cfg.worker, "blocks": G.block_stats(r, N_BLOCKS).round(12).tolist()})
        return sharpe


def search_space(cfg: StudyConfig) -> tuple[dict[str, Dim], dict[str, dict[str, Dim]]]:
    pspace = portfolio_space(cfg.rules, cfg.initial_cash)
    if not cfg.search_portfolio:  # each dimension pinned at today's value
        pspace = {k: Dim("float", v, v) for k, v in default_param_set().portfolio.items()}
    return pspace, strategy_space(cfg.strategies)


def _attr(trial: optuna.trial.FrozenTrial, key: str, default: Any = None) -> Any:
    return trial.user_attrs.get("eval", {}).get(key, default)


def _constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
    return list(_attr(trial, "constraint", [1.0]))


def _feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(c <= 0 for c in _constraints(t))


def run_study(candles: dict[str, pl.DataFrame], labels: dict[str, np.ndarray], cfg: StudyConfig) -> optuna.Study:
    """Search (in-sample bars only) until the study holds `cfg.n_trials` finished trials."""
    return search(candles, labels, cfg)[0]


def search(candles: dict[str, pl.DataFrame], labels: dict[str, np.ndarray],
           cfg: StudyConfig) -> tuple[optuna.Study, Objective]:
    """`run_study`, and the objective it ran: `evaluate` re-runs the chosen set in sample with it
    (its indicators, signals and regime mask are still cached)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial would bury the run's log
    ins, _ = split_in_sample(candles, cfg.oos_fraction)
    space = search_space(cfg)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed + cfg.worker,
                                         n_startup_trials=min(10, max(2, cfg.n_trials // 4)), multivariate=True)
    name = study_name(cfg, candles, space)
    objective = Objective(cfg, ins, labels, space)
    local = bool(cfg.storage) and sqlalchemy.engine.make_url(storage_url(cfg.storage)).get_backend_name() == "sqlite"
    # A local SQLite file is not shared by workers, and Optuna's RDB storage costs ~0.2 s a trial in
    # commits and reads: search in memory, then store the finished study there (optuna-dashboard).
    study = _join_study(name, None if local else cfg.storage, sampler)
    done = _finished(study)
    if done < cfg.n_trials:
        with compiled_truncnorm():  # TPE's own numbers, compiled (bit for bit: tpe_numerics.py)
            study.optimize(objective, n_trials=cfg.n_trials - done, gc_after_trial=False,
                           callbacks=[optuna.study.MaxTrialsCallback(cfg.n_trials,
                                                                     states=(optuna.trial.TrialState.COMPLETE,))])
    if local:
        study = _store(study, cfg.storage, sampler)  # type: ignore[arg-type]
    return study, objective


def _store(study: optuna.Study, url: str, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Copy a finished in-memory study into the RDB at `url`, replacing a study of the same name
    (the same data and space searched again)."""
    storage = make_storage(url)
    try:
        optuna.delete_study(study_name=study.study_name, storage=storage)
    except KeyError:
        pass
    target = optuna.create_study(study_name=study.study_name, storage=storage, sampler=sampler, direction="maximize")
    target.add_trials(study.get_trials(deepcopy=False))
    return target


def _join_study(name: str, url: str | None, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """Create or join the study. Workers starting together on a fresh database race to create its
    tables and the study: the loser of such a race just tries again."""
    for attempt in range(5):
        try:
            storage = make_storage(url) if url else None
            return optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction="maximize",
                                       load_if_exists=True)
        except sqlalchemy.exc.SQLAlchemyError:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _same_bars(a: dict[str, pl.DataFrame], b: dict[str, pl.DataFrame]) -> bool:
    return a.keys() == b.keys() and all(a[s].equals(b[s]) for s in a)


def _finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def optimize_regime(candles: dict[str, pl.DataFrame], labels: dict[str, np.ndarray], cfg: StudyConfig) -> OptimizationOutcome:
    """Search, then judge the best feasible set out of sample: the whole optimization of one regime."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, objective = search(candles, labels, cfg)
    return evaluate(study, candles, labels, cfg, objective)


def evaluate(study: optuna.Study, candles: dict[str, pl.DataFrame], labels: dict[str, np.ndarray],
             cfg: StudyConfig, objective: Objective | None = None) -> OptimizationOutcome:
    """The gate on a finished study: the best feasible trial walked forward through the held-out
    bars, its deflated Sharpe (N = the trials the study ran) and the study's PBO. `objective`:
    the one `search` ran on these candles and this config (a new one otherwise)."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    defaults = default_param_set() if cfg.strategies is None else ParamSet(
        default_param_set().portfolio, {n: dict(c.default_params) for n, c in cfg.strategies.items()})
    feasible = [t for t in trials if _feasible(t)]
    pool = feasible or trials
    best = max(pool, key=lambda t: t.value if t.value is not None else -math.inf) if pool else None
    ps = param_set_from_trial_params(best.params, defaults) if best else defaults
    ins, cut = split_in_sample(candles, cfg.oos_fraction)
    reuse = (objective is not None and objective.cfg is cfg and objective.labels is labels
             and _same_bars(objective.ins, ins))
    if objective is None or not reuse:
        objective = Objective(cfg, ins, labels, search_space(cfg))
    ins_res, r_is = objective.run(ps)
    is_sharpe, is_return, _ = returns_metrics(r_is, ins_res.periods_per_year)
    # out of sample: the set trades on from the start (its history before the cut is its record);
    # its strategies share the evidence families they have in common (regime, volatility, …)
    with memoized():
        full = portfolio_backtest(candles, ps, initial_cash=cfg.initial_cash, rules=cfg.rules,
                                  strategies=objective.strategies or None)
    oos = (full.timestamps >= cut) & regime_mask(full.timestamps, candles, labels, cfg.regime)
    r_all = full.bar_returns()
    r_oos = r_all[oos]
    oos_sharpe, oos_return, _ = returns_metrics(r_oos, full.periods_per_year)
    folds = [f for f in np.array_split(r_oos, cfg.n_folds) if f.size]
    fold_returns = [float(np.prod(1.0 + f) - 1.0) for f in folds]
    oos_trades = int(np.count_nonzero(full.closed_exit_ms >= cut))
    # deflated Sharpe of the chosen trial: N = the trials the study ran; the spread of skill-less
    # trials' Sharpe is the estimator's own sampling variance (docs/optimization.md says why)
    sr, skew, kurt = G.moments(r_is)
    dsr = G.deflated_sharpe_ratio(sr, int(r_is.size), skew, kurt, len(trials), G.null_sharpe_variance(int(r_is.size)))
    blocks = np.array([_attr(t, "blocks") for t in trials if _attr(t, "blocks") is not None], dtype=np.float64)
    pbo = G.pbo_cscv(blocks)[0] if blocks.ndim == 3 and blocks.shape[0] >= 2 else float("nan")
    pbo = pbo if math.isfinite(pbo) else 1.0  # fewer than two trials: no evidence against overfitting
    th = cfg.thresholds
    tests = [
        G.check("constraints", float(sum(c > 0 for c in _constraints(best))) if best else 1.0, 0.0, "<="),
        G.check("oos_trades", float(oos_trades), float(th.min_oos_trades)),
        G.check("oos_sharpe", oos_sharpe, th.min_oos_sharpe),
        G.check("oos_folds", float(np.mean([x > 0 for x in fold_returns])) if fold_returns else 0.0,
                th.min_oos_fold_share),
        G.check("dsr", dsr, th.min_dsr),
        G.check("pbo", pbo, th.max_pbo, "<="),
    ]
    history = [(t.number, float(t.value)) for t in sorted(trials, key=lambda t: t.number) if t.value is not None]
    return OptimizationOutcome(cfg.regime, ps, len(trials), is_sharpe, is_return, oos_sharpe, oos_return, dsr, pbo,
                               G.GateVerdict(tests), study.study_name, history, int(oos.sum()), int(oos_trades),
                               fold_returns)


def trials_for(settings: Any) -> int:
    """PARAM_OPT_TRIALS, or the profile's default: a few seconds a regime locally, 200 on live."""
    raw = str(settings.param_opt_trials or "").strip()
    if raw:
        return int(raw)
    return 200 if settings.nettrace_profile == "live" else 40


def config_from_settings(settings: Any, regime: str, rules: Rules | None = None) -> StudyConfig:
    """The study of `regime` as the settings configure it (storage, trials, gate thresholds)."""
    return StudyConfig(
        regime=regime, n_trials=trials_for(settings), seed=int(settings.nettrace_sim_seed),
        storage=settings.param_opt_storage_url or settings.optuna_url,
        initial_cash=float(settings.nettrace_initial_capital_usd), oos_fraction=float(settings.param_opt_oos_fraction),
        rules=rules, thresholds=G.GateThresholds(min_dsr=settings.param_opt_min_dsr, max_pbo=settings.param_opt_max_pbo,
                                                 min_oos_sharpe=settings.param_opt_min_oos_sharpe))
