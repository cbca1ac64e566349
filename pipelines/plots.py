"""Plots of a trained model and its forecasts, rendered headless (matplotlib, Agg) to PNG.

Each function takes plain frames and returns PNG bytes, so the same picture goes to an
MLflow run (``deepcast.pipelines.tracking``) and into the HTML forecast report
(``deepcast.pipelines.report``). Cheap by design: one figure per plot kind, a capped sample of
series, no anti-aliased markers; the demo's five models add about 2 s.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from deepcast.features.schema import DS, ID, Y

DPI = 90
MAX_SERIES = 6  # series per forecast figure
HISTORY_SEASONS = 4  # seasons of history before the forecast in series plots
COLORS = {"history": "#444444", "actual": "#000000", "holdout": "#d62728",
          "forecast": "#1f77b4", "quantile": "#1f77b4", "conformal": "#ff7f0e"}


def _figure(figsize: tuple[float, float]):
    """A bare Figure, no pyplot: no display needed (servers, CI), nothing registered in
    pyplot's global figure list (nothing to close, nothing kept across models), and
    pyplot's import saved; ``savefig`` renders it with Agg."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize)


def plain_text(fn: Callable[..., bytes | None]) -> Callable[..., bytes | None]:
    """Draw ``fn``'s figure with mathtext off: series ids, model names and titles are user
    text, and ``$...$`` in one must print as written, not be parsed (a malformed one
    raised inside Matplotlib). Scoped to the figure: the caller's rcParams are untouched."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            return fn(*args, **kwargs)

    return wrapper


def _margins(fig, left: float = 0.75) -> None:
    """Fixed margins in inches (cheaper than tight_layout, which draws the figure twice)."""
    w, h = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=left / w, right=1 - 0.15 / w, bottom=0.5 / h, top=1 - 0.3 / h)


def _clamp_dates(ax) -> None:
    """Keep a date axis within 0001-01-01 .. 9999-12-31: the automatic 5 % margin beyond
    data ending late in year 9999 asked matplotlib for dates it cannot hold."""
    import matplotlib.dates as mdates

    lo, hi = ax.get_xlim()
    low, high = (mdates.date2num(t) for t in (pd.Timestamp("0001-01-02"),
                                              pd.Timestamp("9999-12-31")))
    ax.set_xlim(max(lo, low), min(hi, high))


def _few_ticks(ax, dates: bool) -> None:
    """At most ~5 ticks per axis, dates labelled concisely: ticks (each a few artists) and
    their labels were most of the drawing time of a series figure (a third less with
    this, measured on 6 monthly panels), and small panels read better with fewer."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import MaxNLocator

    if dates:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(5))


def to_png(fig) -> bytes:
    """The figure as PNG bytes (the figure is not registered anywhere: it is freed with
    its last reference, no memory kept across models)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def pick_series(df: pd.DataFrame, per_series: pd.DataFrame | None = None,
                chosen: Sequence[str] = (), metric: str = "mase", n: int = MAX_SERIES,
                seed: int = 0) -> list[tuple[str, str]]:
    """(series id, why) for up to ``n`` series: the ``chosen`` ones, the largest (highest
    mean |y|), the worst (highest ``metric`` in ``per_series``), then a seeded sample."""
    picked: dict[str, str] = {}

    def add(uid, why: str) -> None:
        if len(picked) < n and str(uid) not in picked:
            picked[str(uid)] = why

    for uid in chosen:
        add(uid, "chosen")
    level = df.assign(_abs=df[Y].abs()).groupby(ID, sort=True)["_abs"].mean()
    if len(level):
        add(level.idxmax(), "largest")
    if per_series is not None and metric in per_series and per_series[metric].notna().any():
        worst = per_series.sort_values(metric, ascending=False, kind="stable")
        add(worst[ID].iloc[0], f"worst {metric}")
    rest = [u for u in level.index.astype(str) if u not in picked]
    rng = np.random.default_rng(seed)
    for uid in rng.permutation(np.asarray(rest, dtype=object))[: max(n - len(picked), 0)]:
        add(uid, "sample")
    return list(picked.items())


def _suffix_number(column: str, prefix: str) -> float | None:
    """The number after ``prefix`` in a band column (yhat_q2.5 -> 2.5), None otherwise."""
    if not column.startswith(prefix):
        return None
    try:
        return float(column.removeprefix(prefix))
    except ValueError:
        return None


def _band_pairs(columns: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(low column, high column, label, kind) for every quantile pair and conformal level,
    widest first so narrower bands are drawn on top."""
    cols = set(columns)
    pairs = []
    for c in sorted(columns, key=lambda c: _suffix_number(c, "yhat_q") or 0.0):
        q = _suffix_number(c, "yhat_q")
        if q is not None and q < 50 and f"yhat_q{100 - q:g}" in cols:
            pairs.append((c, f"yhat_q{100 - q:g}", f"q{q:g}-q{100 - q:g}", "quantile"))
    lows = {c: _suffix_number(c, "yhat_lo_") for c in columns}
    for c, level in sorted(((c, v) for c, v in lows.items() if v is not None),
                           key=lambda cv: -cv[1]):
        hi = "yhat_hi_" + c.removeprefix("yhat_lo_")
        if hi in cols:
            pairs.append((c, hi, f"conformal {level:g} %", "conformal"))
    return sorted(pairs, key=lambda p: p[3] != "conformal")  # quantiles drawn on top


@plain_text
def series_figure(history: pd.DataFrame, forecast: pd.DataFrame,
                  series: Sequence[tuple[str, str]], holdout: pd.DataFrame | None = None,
                  season_length: int = 1, horizon: int = 1, title: str = "") -> bytes:
    """One panel per series: recent history, the holdout's actuals and forecast (when
    given: ``unique_id, ds, y, yhat``) and the future forecast with its quantile and
    conformal bands (``unique_id, ds, yhat`` + ``yhat_q..`` / ``yhat_lo_..`` columns)."""
    n = max(len(series), 1)
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = _figure((12.4, 2.6 * rows if n > 1 else 3.4))
    axes = fig.subplots(rows, cols, squeeze=False)
    keep = max(HISTORY_SEASONS * max(season_length, 1), 3 * horizon, 24)
    bands = _band_pairs(list(forecast.columns))
    h_by = dict(tuple(history.groupby(ID, sort=False)))
    f_by = dict(tuple(forecast.groupby(ID, sort=False)))
    o_by = dict(tuple(holdout.groupby(ID, sort=False))) if holdout is not None else {}
    for ax, (uid, why) in zip(axes.ravel(), series, strict=False):
        hist = h_by.get(uid, history.iloc[:0]).tail(keep)
        ax.plot(hist[DS], hist[Y], color=COLORS["history"], lw=1.0, label="history")
        if uid in o_by:
            ho = o_by[uid]
            ax.plot(ho[DS], ho[Y], color=COLORS["actual"], lw=1.0, label="holdout actual")
            ax.plot(ho[DS], ho["yhat"], color=COLORS["holdout"], lw=1.0, ls="--",
                    label="holdout forecast")
        fc = f_by.get(uid)
        if fc is not None:
            alpha = {"conformal": 0.15, "quantile": 0.30}
            for lo, hi, label, kind in bands:
                ax.fill_between(fc[DS], fc[lo], fc[hi], color=COLORS[kind], alpha=alpha[kind],
                                lw=0.8 if kind == "quantile" else 0, label=label)
                alpha[kind] += 0.1
            ax.plot(fc[DS], fc["yhat"], color=COLORS["forecast"], lw=1.4, label="forecast")
        dates = pd.api.types.is_datetime64_any_dtype(history[DS])
        if dates:
            _clamp_dates(ax)
        _few_ticks(ax, dates)
        ax.set_title(f"{uid} ({why})", fontsize=9, y=1.0)  # y: no auto-placement pass
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.25)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    header = (0.3 if title else 0.0) + (0.22 if handles else 0.0)  # inches above the axes
    top = 1.0 - header / fig.get_figheight()
    if title:
        fig.suptitle(title, y=0.995, va="top", fontsize=10)
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 7), fontsize=8,
                   frameon=False, bbox_to_anchor=(0.5, 1.0 - (0.3 if title else 0.0)
                                                  / fig.get_figheight()))
    # fixed margins (in inches) instead of tight_layout, which costs a full extra draw
    w, h = fig.get_figwidth(), fig.get_figheight()
    fig.subplots_adjust(left=0.6 / w, right=1 - 0.15 / w, bottom=0.4 / h,
                        top=top - 0.3 / h, hspace=0.45, wspace=0.18)
    return to_png(fig)


@plain_text
def loss_figure(history: dict[str, list[float]], title: str = "") -> bytes | None:
    """Training and validation loss per epoch (None for a model that does not train)."""
    curves = {k: v for k, v in history.items() if k in ("loss", "val_loss") and v}
    if not curves:
        return None
    fig = _figure((5.5, 3.0))
    ax = fig.subplots()
    for key, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, lw=1.2,
                label={"loss": "train", "val_loss": "validation"}[key])
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled)")
    ax.set_title(title or "loss per epoch", fontsize=10)
    ax.grid(alpha=0.25)
    ax.legend(fontsize=8)
    _margins(fig)
    return to_png(fig)


def horizon_errors(holdout: pd.DataFrame, scale: pd.Series, horizon: int) -> pd.DataFrame:
    """Mean absolute scaled error (MASE terms) per horizon step of a holdout forecast
    (``unique_id, ds, y, yhat``, ``test_size`` rows per series, origins ``horizon`` apart);
    ``scale`` maps series id -> seasonal naive MAE on the training span."""
    step = holdout.groupby(ID, sort=False).cumcount().to_numpy() % horizon + 1
    denom = holdout[ID].map(scale).to_numpy(np.float64)
    err = np.abs(holdout[Y].to_numpy(np.float64) - holdout["yhat"].to_numpy(np.float64))
    scaled = np.where(denom > 0, err / np.where(denom > 0, denom, 1.0), np.nan)
    out = pd.DataFrame({"h": step, "scaled_error": scaled}).groupby("h", as_index=False)
    return out["scaled_error"].mean()


@plain_text
def horizon_figure(errors: pd.DataFrame, title: str = "") -> bytes:
    """Bar chart of the mean scaled error per horizon step."""
    fig = _figure((5.5, 3.0))
    ax = fig.subplots()
    ax.bar(errors["h"], errors["scaled_error"], color=COLORS["forecast"])
    ax.axhline(1.0, color="#888888", lw=0.8, ls=":", label="1 = seasonal naive in-sample MAE")
    ax.set_xlabel("horizon step")
    ax.set_ylabel("mean |error| / seasonal naive MAE")
    ax.set_title(title or "error by horizon step (holdout)", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.25, axis="y")
    _margins(fig)
    return to_png(fig)


@plain_text
def skill_figure(table: pd.DataFrame, metric: str, highlight: str | None = None) -> bytes:
    """Skill vs seasonal naive (``1 - metric / metric_seasonal_naive``) per model, best
    on top; above 0 beats seasonal naive. ``table`` has ``model`` and ``skill_<metric>``."""
    col = f"skill_{metric}"
    data = table[["model", col]].dropna().sort_values(col, kind="stable")
    fig = _figure((5.5, 0.45 * max(len(data), 2) + 1.0))
    ax = fig.subplots()
    colors = ["#2ca02c" if v > 0 else "#d62728" for v in data[col]]
    bars = ax.barh(data["model"].astype(str), data[col], color=colors)
    if highlight is not None:
        for bar, name in zip(bars, data["model"], strict=True):
            if name == highlight:
                bar.set_edgecolor("#000000")
                bar.set_linewidth(1.5)
    for bar, value in zip(bars, data[col], strict=True):
        ax.annotate(f"{value:+.3f}", (value, bar.get_y() + bar.get_height() / 2),
                    xytext=(4 if value >= 0 else -4, 0), textcoords="offset points",
                    ha="left" if value >= 0 else "right", va="center", fontsize=7)
    ax.margins(x=0.15)
    ax.axvline(0.0, color="#000000", lw=0.8)
    ax.set_xlabel(f"skill on {metric} vs seasonal naive (> 0 is better)")
    ax.set_title(f"holdout {metric} skill per model", fontsize=10)
    ax.grid(alpha=0.25, axis="x")
    fig.tight_layout()
    return to_png(fig)
