"""Statistical models per series, fitted by maintained libraries: ETS and Theta from
statsmodels, ARIMA from pmdarima's ``auto_arima`` (Hyndman-Khandakar stepwise search on
statsmodels' SARIMAX).

Why not statsforecast: its current release pins pandas < 3 and deepcast runs on pandas 3.
On 40 M3 monthly series (``benchmarks/stats_fit.py``) statsmodels' ETS with the AICc
selection below is ~10x slower than statsforecast's AutoETS and pmdarima ~6x slower than
its AutoARIMA, at MASE within ~3 %; the fits run per series in parallel processes.

Each function forecasts one series (a 1-D float array without missing values) ``h`` steps
ahead with season ``m``, refitting from that history. With several seasonal periods
(``data.season_length: [24, 168]``) the series is first decomposed by MSTL (statsmodels);
the method forecasts the seasonally adjusted series without a season of its own and each
seasonal component repeats its last cycle, as statsforecast's MSTL model does. Nothing is
saved but the options, so a served model needs no pickle. A fit that fails or returns
non-finite values falls back to seasonal naive (naive when the series is shorter than a
season) and is counted, never hidden.

Kept apart from the family classes (``models/ets.py`` ...) so worker processes import
statsmodels and numpy only, not Keras.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the most seasonal states ETS estimates by likelihood; longer seasons start from the
#: classical decomposition (statsmodels' "heuristic" initialisation)
MAX_ESTIMATED_SEASON = 24
#: fewer series than this are fitted in the calling process (a pool costs seconds to start)
PARALLEL_FROM = 16


@dataclass(frozen=True)
class LocalForecasts:
    """Forecasts of many series and how many of them fell back to seasonal naive."""

    yhat: np.ndarray  # (n_series, h)
    fallbacks: int


def seasonal_naive(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """The last season repeated (the last value when the series is shorter than one)."""
    if m > 1 and len(y) >= m:
        return y[len(y) - m + (np.arange(h) % m)]
    return np.repeat(y[-1], h)


def ets(y: np.ndarray, h: int, m: int, model: str = "ZZZ", damped: bool | None = None
        ) -> np.ndarray:
    """ETS with the smallest AICc among the candidates ``model`` allows (letters error,
    trend, season; ``Z`` = choose): additive or multiplicative error and season, none or
    additive (optionally damped) trend, as forecast::ets and statsforecast's AutoETS.
    Multiplicative parts need positive data; seasonal models need two seasons."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    positive = bool((y > 0).all())
    err, trend, season = model.upper()
    seasonal_ok = m > 1 and len(y) >= 2 * m + 2
    best, best_ic = None, np.inf
    for e in _letters(err, "AM" if positive else "A"):
        for t in _letters(trend, "NA"):
            for s in _letters(season, ("NAM" if positive else "NA") if seasonal_ok else "N"):
                if e == "A" and s == "M":  # numerically unstable (Hyndman et al. 2008)
                    continue
                for d in ((False, True) if damped is None else (damped,)) if t == "A" \
                        else (False,):
                    fit = _ets_fit(ETSModel, y, e, t, d, s, m)
                    if fit is not None and np.isfinite(fit.aicc) and fit.aicc < best_ic:
                        best, best_ic = fit, fit.aicc
    if best is None:
        raise ValueError("no ETS model could be fitted")
    return np.asarray(best.forecast(h), dtype=np.float64)


def _letters(choice: str, allowed: str) -> str:
    return allowed if choice == "Z" else "".join(c for c in choice if c in allowed)


def _ets_fit(cls: Any, y: np.ndarray, e: str, t: str, d: bool, s: str, m: int) -> Any:
    kind = {"A": "add", "M": "mul", "N": None}
    init = "estimated" if s == "N" or m <= MAX_ESTIMATED_SEASON else "heuristic"
    try:
        return cls(y, error=kind[e], trend=kind[t], damped_trend=d, seasonal=kind[s],
                   seasonal_periods=m if s != "N" else None,
                   initialization_method=init).fit(disp=False, maxiter=1000)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None


def theta(y: np.ndarray, h: int, m: int, deseasonalize: bool = True) -> np.ndarray:
    """The Theta method (Assimakopoulos & Nikolopoulos 2000, as statsmodels' ThetaModel):
    a 90 % seasonality test, then multiplicative deseasonalising (additive when the series
    is not positive), SES with drift; seasonal only with two seasons of history."""
    from statsmodels.tsa.forecasting.theta import ThetaModel

    seasonal = deseasonalize and m > 1 and len(y) >= 2 * m
    fit = ThetaModel(y, period=m if seasonal else 1, deseasonalize=seasonal,
                     method="auto" if bool((y > 0).all()) else "additive").fit()
    return np.asarray(fit.forecast(h), dtype=np.float64)


def arima(y: np.ndarray, h: int, m: int, seasonal: bool = True, stepwise: bool = True
          ) -> np.ndarray:
    """ARIMA orders chosen by pmdarima's ``auto_arima`` (unit-root tests for the
    differencing, then a stepwise AICc search, as forecast::auto.arima)."""
    import pmdarima

    seasonal = seasonal and m > 1 and len(y) >= 2 * m
    fit = pmdarima.auto_arima(y, m=m if seasonal else 1, seasonal=seasonal,
                              stepwise=stepwise, information_criterion="aicc",
                              suppress_warnings=True, error_action="ignore")
    return np.asarray(fit.predict(h), dtype=np.float64)


METHODS: dict[str, Callable[..., np.ndarray]] = {"ets": ets, "theta": theta, "arima": arima}


def forecast_one(method: str, y: np.ndarray, h: int, periods: Sequence[int],
                 options: dict[str, Any]) -> np.ndarray:
    """``METHODS[method]`` on one series; with two or more ``periods`` that each fit twice
    in the history, on its MSTL-adjusted values plus the seasonal components' last
    cycles."""
    fit = [p for p in periods if p > 1 and len(y) >= 2 * p]
    fn = METHODS[method]
    if len(fit) < 2:
        return fn(y, h, fit[0] if fit else periods[0], **options)
    from statsmodels.tsa.seasonal import MSTL

    seasonal = np.asarray(MSTL(y, periods=fit).fit().seasonal).reshape(len(y), -1)
    ahead = sum(seasonal_naive(seasonal[:, i], h, p) for i, p in enumerate(fit))
    return fn(y - seasonal.sum(axis=1), h, 1, **_without_season(method, options)) + ahead


def _without_season(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the method's own season off (MSTL removed the seasons already)."""
    if method == "ets":  # keep the error and trend letters
        return {**options, "model": str(options.get("model", "ZZZ"))[:2] + "N"}
    return {**options, {"theta": "deseasonalize", "arima": "seasonal"}[method]: False}


def forecast_many(method: str, series: Sequence[np.ndarray], h: int,
                  periods: int | Sequence[int], options: dict[str, Any], n_jobs: int = 0
                  ) -> LocalForecasts:
    """Forecast every series with ``METHODS[method]`` (see :func:`forecast_one`) in
    ``n_jobs`` processes (0: one per CPU this process may use; one in a daemonic process
    such as a Dask worker, which may not start children); results in input order."""
    m = (periods,) if isinstance(periods, int) else tuple(periods)
    jobs = n_jobs if n_jobs > 0 else len(os.sched_getaffinity(0))
    if multiprocessing.current_process().daemon:  # a Dask worker: no child processes
        jobs = 1
    if jobs == 1 or len(series) < PARALLEL_FROM:
        parts = [_chunk(method, list(series), h, m, options)]
    else:
        from joblib import Parallel, delayed

        bounds = np.linspace(0, len(series), min(len(series), 4 * jobs) + 1).astype(int)
        chunks = [list(series[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        parts = Parallel(n_jobs=jobs, backend="loky")(
            delayed(_chunk)(method, c, h, m, options) for c in chunks)
    yhat = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, h))
    return LocalForecasts(yhat.reshape(len(series), h), int(sum(p[1] for p in parts)))


def _chunk(method: str, series: list[np.ndarray], h: int, m: tuple[int, ...],
           options: dict[str, Any]) -> tuple[np.ndarray, int]:
    """(forecasts, fallbacks) of a chunk of series, in a worker process."""
    # statsmodels adds "always" filters for its warnings when first imported: import it
    # before ours, which must come first to silence them
    import statsmodels.tools.sm_exceptions  # noqa: F401
    from threadpoolctl import threadpool_limits

    out, failed = np.empty((len(series), h)), 0
    # one BLAS thread: a series' fit is small-matrix algebra, where OpenBLAS's extra
    # threads only spin between calls (three auto-ETS fits: 14.1 s of CPU on 2 threads,
    # 5.8 s on one, in less wall time); the pool's processes are the parallelism
    with warnings.catch_warnings(), np.errstate(all="ignore"), \
            threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # convergence chatter, once per candidate model
        for i, y in enumerate(series):
            try:
                out[i] = forecast_one(method, y, h, m, options) if len(y) >= 3 else np.nan
            except Exception:  # noqa: BLE001  (any library failure -> counted fallback)
                out[i] = np.nan
            if not np.isfinite(out[i]).all():
                out[i], failed = seasonal_naive(y, h, m[0]), failed + 1
    return out, failed
