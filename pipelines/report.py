"""The forecast report: one self-contained HTML file an analyst can open anywhere.

Inline CSS, plots as base64 PNG data URIs, no script and no link fetched at view time. It
says which registered model and version made the forecast, when and on what data it was
trained (read back from the training run), how it scored against seasonal naive, shows the
largest / worst / chosen series with their bands, and the forecast table (capped).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.features.hierarchy import LEVEL
from deepcast.features.schema import DS, ID
from deepcast.pipelines import plots
from deepcast.pipelines.forecast import FileKind, FileWrite, write_files

if TYPE_CHECKING:
    from deepcast.pipelines.tracking.history import TrainingInfo

MAX_TABLE_ROWS = 500
MAX_PLOTTED = 12
REPORT = FileKind("--report", {".html": "html", ".htm": "html"},
                  "use a .html file name, e.g. --report report.html")

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;
 color:#1d1d1f;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;
 border-bottom:2px solid #e1e4e8;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:12px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px 16px}
.card h3{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#57606a;
 margin:0 0 6px}
dl{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:3px 12px;font-size:14px}
dt{color:#57606a}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;font-size:13px;background:#fff;margin:6px 0}
th,td{border:1px solid #e1e4e8;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f0f2f5;position:sticky;top:0}td.l,th.l{text-align:left}
tr.hl td{background:#fff8c5;font-weight:600}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
.note{color:#57606a;font-size:13px}
img{max-width:100%;background:#fff;border:1px solid #e1e4e8;border-radius:6px}
.scroll{max-height:640px;overflow:auto;display:inline-block;border:1px solid #e1e4e8}
code{background:#eef0f3;padding:1px 4px;border-radius:3px;font-size:90%}
"""


def check_report_path(path: str | Path) -> Path:
    """Fail fast (before any work) on a report name that is not .html or is a folder."""
    return REPORT.check(path)


def parse_series(text: str | Sequence[str] | None) -> list[str]:
    """Series ids from ``--series ID,ID`` (blanks dropped, order kept, no duplicates)."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def check_series(chosen: Sequence[str], ids: Sequence[str],
                 dropped: Mapping[str, int] | None = None) -> None:
    """ConfigError naming every chosen series that is not in the forecast: one that
    validation dropped as too short (``dropped``: id -> rows) and the fallback did not
    forecast is named as such, the others as not in the data."""
    known, short = set(map(str, ids)), {str(k) for k in (dropped or {})}
    unknown = [s for s in chosen if s not in known]
    short_ones = [s for s in unknown if s in short]
    if short_ones:
        raise ConfigError(f"--series: {', '.join(short_ones[:10])}: too short for the model "
                          "(dropped by validation) and not forecast: data.fallback is none, "
                          "or the series has no observed value",
                          hint="leave them out of --series (or set data.fallback: "
                          "seasonal_naive)")
    if unknown:
        examples = ", ".join(sorted(known)[:5])
        raise ConfigError(f"--series: {len(unknown)} series not in the data: "
                          f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}",
                          hint=f"use ids from the data's id column (e.g. {examples})")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(value: Any) -> str:
    """A time stamp without a midnight time of day (monthly data reads 2019-01-01)."""
    text = "" if value is None else str(value)
    return text.removesuffix(" 00:00:00")


def _dates(df: pd.DataFrame) -> pd.DataFrame:
    """``ds`` as text, dates only when every time of day is midnight."""
    if pd.api.types.is_datetime64_any_dtype(df[DS]):
        ds = df[DS]
        fmt = "%Y-%m-%d" if (ds == ds.dt.normalize()).all() else "%Y-%m-%d %H:%M"
        return df.assign(**{DS: ds.dt.strftime(fmt)})
    return df


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return f"{int(value):,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    if v != v:  # NaN
        return "–"
    return f"{v:,.{digits}f}" if abs(v) < 1e6 else f"{v:,.0f}"


def _dl(rows: Sequence[tuple[str, str]]) -> str:
    """A definition list; values are already escaped HTML."""
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _table(df: pd.DataFrame, highlight: tuple[str, str] | None = None, digits: int = 4
           ) -> str:
    """An HTML table; text columns left-aligned, numbers formatted; ``highlight`` = (column,
    value) marks that row."""
    text_cols = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    head = "".join(f'<th class="{"l" if c in text_cols else ""}">{_e(c)}</th>'
                   for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            cells.append(f'<td class="l">{_e(v)}</td>' if c in text_cols
                         else f"<td>{_num(v, digits)}</td>")
        hl = highlight is not None and str(getattr(row, highlight[0], "")) == highlight[1]
        body.append(f'<tr class="{"hl" if hl else ""}">{"".join(cells)}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


@dataclass(frozen=True)
class ReportSettings:
    """How a report is made: the ``pipeline`` and ``alias`` it names, the ``output`` it
    points to, the ``metric`` it scores on, the seasonality of the naive bands, the
    ``chosen`` series to plot and the table's ``max_rows``."""

    pipeline: str
    alias: str = "champion"
    output: str = ""
    metric: str = "mase"
    season_length: int = 1
    chosen: tuple[str, ...] = ()
    max_rows: int = MAX_TABLE_ROWS
    notes: tuple[str, ...] = ()  # what the reader should know (levels left out, ...)


def render_report(forecast: pd.DataFrame, history: pd.DataFrame, info: TrainingInfo,
                  settings: ReportSettings) -> str:
    """The report's HTML. ``forecast`` is the forecast file's frame, ``history`` the
    validated history it was made from (canonical columns), ``info`` what was read back
    from the training runs of the version that made it."""
    model = info.model_name or (forecast["model_name"].iloc[0] if len(forecast) else "")
    picked, n_plot = _picked(forecast, history, info, settings)
    parts = [*_header(forecast, info, settings, model),
             _cards(forecast, history, info, settings, model),
             *_scores(info, settings, model),
             *_series_plots(forecast, history, settings, picked, n_plot),
             *_level_plots(forecast, history, settings),
             *_forecast_table(forecast, info, settings, picked)]
    body = "\n".join(parts)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Forecast report: {_e(settings.pipeline)}</title><style>{CSS}</style>"
            f"</head><body><main>\n{body}\n</main></body></html>\n")


def _horizon(forecast: pd.DataFrame) -> int:
    return int(forecast.groupby(ID).size().max()) if len(forecast) else 0


def _header(forecast: pd.DataFrame, info: TrainingInfo, settings: ReportSettings,
            model: str) -> list[str]:
    """The title and one sentence: how many forecasts, by which version, written where."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [f"<h1>Forecast report: {_e(settings.pipeline)}</h1>",
            f'<p class="sub">{len(forecast):,} forecasts for '
            f"{forecast[ID].nunique():,} series, {_horizon(forecast)} steps ahead, by "
            f"<b>{_e(model)}</b> (version {_e(info.version)}, alias "
            f"<code>{_e(settings.alias)}</code>); written to "
            f"<code>{_e(settings.output)}</code> at {now}.</p>",
            *(f'<p class="note bad">Note: {_e(note)}</p>' for note in settings.notes)]


def _cards(forecast: pd.DataFrame, history: pd.DataFrame, info: TrainingInfo,
           settings: ReportSettings, model: str) -> str:
    """Three cards: the model, the data it was trained on, this forecast."""
    data = info.data
    model_card = _dl([
        ("registered model", f"<code>{_e(info.registered_model or settings.pipeline)}</code>"),
        ("version", f"{_e(info.version)} (requested as <code>{_e(settings.alias)}</code>)"),
        ("model", f"{_e(model)} ({_e(info.model_type)})"),
        ("trained", _e(info.trained_at)),
        ("registered", _e(info.registered_at)),
        ("model run", f"<code>{_e(info.run_id)}</code>"),
    ])
    data_card = _dl([
        ("content sha256", f"<code>{_e(data.sha256)}</code>"),
        ("source", _e(data.source)),
        ("date range", f"{_e(_when(data.start))} → {_e(_when(data.end))}"),
        ("series", _e(f"{int(data.n_series):,}" if data.n_series is not None else "")),
        ("rows", _e(f"{int(data.n_rows):,}" if data.n_rows is not None else "")),
    ])
    h_start, h_end = history[DS].min(), history[DS].max()
    f_start, f_end = (forecast[DS].min(), forecast[DS].max()) if len(forecast) else ("", "")
    forecast_card = _dl([
        ("history", f"{_e(_when(h_start))} → {_e(_when(h_end))}"),
        ("series", f"{history[ID].nunique():,} ({len(history):,} rows)"),
        ("forecast dates", f"{_e(_when(f_start))} → {_e(_when(f_end))}"),
        ("columns", _e(", ".join(map(str, forecast.columns)))),
    ])
    return ('<div class="cards">'
            f'<div class="card"><h3>Model</h3>{model_card}</div>'
            f'<div class="card"><h3>Trained on</h3>{data_card}</div>'
            f'<div class="card"><h3>This forecast</h3>{forecast_card}</div></div>')


def _scores(info: TrainingInfo, settings: ReportSettings, model: str) -> list[str]:
    """The gate's decision, the holdout scores and every model of the training run."""
    metric, gate, metrics = settings.metric, info.gate, info.metrics
    parts = ["<h2>Scores against seasonal naive</h2>"]
    if gate.decision:
        ok = gate.decision == "promoted"
        champ = gate.champion_score
        parts.append(_dl([
            ("promotion gate", _e(gate.gate)),
            (f"this model ({metric})", _num(gate.scores.get(metric))),
            (f"seasonal naive ({metric})", _num(gate.seasonal_naive_score)),
            ("champion it was compared with", _num(champ) if champ not in ("", None)
             else "none"),
            ("decision", f'<span class="{"ok" if ok else "bad"}">{_e(gate.decision)}</span>: '
                         f"{_e(gate.reason)}"),
        ]))
    hold = {k.removeprefix("holdout_"): v for k, v in metrics.items()
            if k.startswith("holdout_")}
    if hold:
        parts.append('<p class="note">Holdout of this model: '
                     + ", ".join(f"{_e(k)} {_num(v)}" for k, v in sorted(hold.items()))
                     + (f"; skill on {_e(metric)} vs seasonal naive "
                        f"{_num(metrics.get(f'skill_{metric}'))} (above 0 is better)."
                        if f"skill_{metric}" in metrics else ".") + "</p>")
    if info.leaderboard:
        table = pd.DataFrame(info.leaderboard)
        parts.append("<p>Every model of the training run on the same holdout (the row of this "
                     "model is highlighted):</p>")
        parts.append(_table(table, ("model", str(model))))
        if f"skill_{metric}" in table:
            parts.append("<p>" + _img(plots.skill_figure(table, metric, str(model)),
                                      "skill per model") + "</p>")
    return parts


def _picked(forecast: pd.DataFrame, history: pd.DataFrame, info: TrainingInfo,
            settings: ReportSettings) -> tuple[list[tuple[str, str]], int]:
    """(the series to plot, with why, how many may be plotted): the chosen ones, the
    largest, the worst of the training holdout, a sample; only series of the forecast."""
    in_forecast = set(forecast[ID].astype(str))
    per_series = info.per_series
    if per_series is not None:
        per_series = per_series[per_series[ID].astype(str).isin(in_forecast)]
    n_plot = min(max(plots.MAX_SERIES, len(settings.chosen) + 2), MAX_PLOTTED)
    picked = plots.pick_series(history[history[ID].astype(str).isin(in_forecast)],
                               per_series, list(settings.chosen), settings.metric, n=n_plot)
    return picked, n_plot


def _series_plots(forecast: pd.DataFrame, history: pd.DataFrame, settings: ReportSettings,
                  picked: list[tuple[str, str]], n_plot: int) -> list[str]:
    """One figure: recent history, forecast and bands of each picked series."""
    chosen = settings.chosen
    parts = ["<h2>Series</h2>",
             '<p class="note">Largest (highest mean level), worst (highest holdout '
             f"{_e(settings.metric)} of this model at training), "
             + ("the chosen ones (<code>--series</code>), " if chosen else "")
             + "and a sample; recent history, the forecast and its bands.</p>"]
    if len(chosen) > n_plot:
        parts.append(f'<p class="note">Showing {n_plot} of the {len(chosen)} chosen '
                     "series.</p>")
    parts.append(_img(plots.series_figure(history, forecast, picked,
                                          season_length=settings.season_length,
                                          horizon=max(_horizon(forecast), 1)),
                      "series forecasts"))
    return parts


LEVEL_SERIES = 4  # series plotted per level of a hierarchy


def _level_plots(forecast: pd.DataFrame, history: pd.DataFrame, settings: ReportSettings
                 ) -> list[str]:
    """A hierarchy's forecast: one figure per level (its largest series and a sample)."""
    if LEVEL not in forecast.columns:
        return []
    parts = ["<h2>Levels</h2>",
             '<p class="note">One figure per level of the hierarchy, top first: its largest '
             "series and a sample. The forecasts are reconciled: each aggregate is the sum "
             "of its bottom series.</p>"]
    sizes = forecast.groupby(forecast[LEVEL].astype(str))[ID].nunique()
    for name in sizes.sort_values(kind="stable").index:  # the fewest series (top) first
        ids = set(forecast.loc[forecast[LEVEL].astype(str) == name, ID].astype(str))
        past = history[history[ID].astype(str).isin(ids)]
        ahead = forecast[forecast[ID].astype(str).isin(ids)]
        picked = plots.pick_series(past, None, (), settings.metric, n=LEVEL_SERIES)
        parts += [f"<h3>{_e(name)} ({len(ids)} series)</h3>",
                  _img(plots.series_figure(past, ahead, picked,
                                           season_length=settings.season_length,
                                           horizon=max(_horizon(forecast), 1)),
                       f"level {name}")]
    return parts


def _forecast_table(forecast: pd.DataFrame, info: TrainingInfo, settings: ReportSettings,
                    picked: list[tuple[str, str]]) -> list[str]:
    """The forecast rows (at most ``max_rows``, the plotted series first) and where the
    runs are."""
    max_rows, output = settings.max_rows, settings.output
    parts = ["<h2>Forecast table</h2>"]
    shown = forecast
    if len(forecast) > max_rows:
        rank = {uid: i for i, (uid, _) in enumerate(picked)}
        keyed = forecast.assign(_k=forecast[ID].astype(str).map(rank).fillna(len(rank)))
        shown = keyed.sort_values(["_k", ID, DS], kind="stable").drop(columns="_k")
        shown = shown.head(max_rows)
        parts.append(f'<p class="note">Showing the first {max_rows:,} of {len(forecast):,} '
                     f"rows (the plotted series first); {len(forecast) - max_rows:,} rows "
                     f"are omitted here. The full table is in <code>{_e(output)}</code>.</p>")
    cols = [c for c in shown.columns if c not in ("run_id",)]
    parts.append(f'<div class="scroll">{_table(_dates(shown[cols]), digits=3)}</div>')
    parts.append(f'<p class="note">Tracking store: <code>{_e(info.tracking_uri)}'
                 f"</code>; training run <code>{_e(info.parent_run_id)}</code>. "
                 "This file is self-contained: it loads nothing from the network.</p>")
    return parts


def report_file(path: str | Path, html_text: str) -> FileWrite:
    """(path, writer) of the report, for :func:`~deepcast.pipelines.forecast.write_files`
    (written together with the forecast: both change, or neither does)."""
    data = html_text.encode("utf-8")
    return REPORT.format(path)[0], lambda fh: fh.write(data)


def write_report(path: str | Path, html_text: str) -> Path:
    """Write the report atomically (temp file + rename)."""
    return write_files([report_file(path, html_text)])[0]
