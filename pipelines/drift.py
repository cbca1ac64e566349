"""Drift check: compare new data with the reference profile saved with the champion.

At train time :func:`reference_profile` summarises the training data: for every series the
level (mean), scale (standard deviation) and missing rate of its last ``window`` points
(default: ``features.lookback``), its length and last ``ds``, plus the series set and a few
global aggregates. The profile is logged as JSON with every model run, so the champion
carries the profile of the data it was trained on.

Before a retrain, :func:`check_drift` profiles the new data the same way and reports:

- per series (present in both): ``level_shift = |level_new - level_ref| / scale_ref``,
  ``scale_ratio = scale_new / scale_ref`` (or its inverse when the scale shrank), and the
  rise of the missing rate;
- globally: the same three measures on the total of the common series (its scale taken as
  the root sum of squared series scales), the share of series that breached, and the
  shares of new and vanished series.

Per-series breaches are reported; only global breaches make a run stop when
``drift.on_breach: block``. Pure pandas: no MLflow, no Prefect.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.schema import DS, ID, Y

PROFILE_VERSION = 1
PROFILE_ARTIFACT = "drift/reference_profile.json"


@dataclass(frozen=True)
class DriftThresholds:
    """When a measure counts as a breach (the YAML's ``drift:`` section)."""

    level_shift: float = 3.0
    scale_ratio: float = 2.0
    missing_rate: float = 0.1
    new_series: float = 0.2
    vanished_series: float = 0.2
    series_share: float = 0.1


def _ds_text(value: Any) -> str | int:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return pd.Timestamp(value).isoformat()


def _series_stats(frame: pd.DataFrame, window: int) -> pd.DataFrame:
    """level, scale, missing_rate over the last ``window`` rows of each series; length and
    last ds over all its rows. ``frame`` holds unique_id, ds, y (y may be missing)."""
    df = frame[[ID, DS, Y]].dropna(subset=[ID, DS]).sort_values([ID, DS], kind="stable")
    tail = df.groupby(ID, sort=True).tail(window)
    y = tail[Y].astype("float64")
    by = tail[ID]
    return pd.DataFrame({
        "level": y.groupby(by).mean(),
        "scale": y.groupby(by).std(ddof=0),
        "missing_rate": y.isna().groupby(by).mean(),
        "length": df.groupby(ID).size(),
        "last_ds": df.groupby(ID)[DS].max(),
    })


def reference_profile(frame: pd.DataFrame, window: int) -> dict[str, Any]:
    """The JSON-able profile of ``frame`` (unique_id, ds, y; y may be missing)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    stats = _series_stats(frame, window)
    series = {
        str(uid): {"level": _num(r.level), "scale": _num(r.scale),
                   "missing_rate": float(r.missing_rate), "length": int(r.length),
                   "last_ds": _ds_text(r.last_ds)}
        for uid, r in stats.iterrows()
    }
    return _with_global(series, window)


def merge_profiles(profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """The panel's profile from its shards' (each series whole in one shard): their series
    together, the global aggregates computed from them as for the whole panel."""
    series = {k: v for p in profiles for k, v in p["series"].items()}
    window = profiles[0]["window"] if profiles else 1
    return _with_global(dict(sorted(series.items())), window)


def _with_global(series: dict[str, dict[str, Any]], window: int) -> dict[str, Any]:
    """The profile of per-series stats (in sorted-ID order): the globals are the total
    level and rows, the mean missing rate and the root sum of squared scales."""
    def column(key: str) -> pd.Series:
        return pd.Series([s[key] for s in series.values()], dtype="float64")

    return {
        "version": PROFILE_VERSION,
        "window": int(window),
        "series": series,
        "global": {"n_series": len(series), "n_rows": int(column("length").sum()),
                   "missing_rate": _num(column("missing_rate").mean()),
                   "level": _num(column("level").sum()),
                   "scale": _num(math.sqrt((column("scale") ** 2).sum()))},
    }


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass
class DriftReport:
    """What the drift check found. ``breaches`` are global; ``series`` lists the series
    that breached (one row each, with every measure)."""

    checked: bool
    note: str = ""
    on_breach: str = "warn"
    n_reference: int = 0
    n_new: int = 0
    measures: dict[str, float | None] = field(default_factory=dict)
    breaches: list[str] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    new_series: list[str] = field(default_factory=list)
    vanished_series: list[str] = field(default_factory=list)

    @property
    def breached(self) -> bool:
        return bool(self.breaches or self.series)

    @property
    def blocking(self) -> bool:
        """A global breach under ``on_breach: block`` stops the retrain."""
        return self.checked and self.on_breach == "block" and bool(self.breaches)

    def summary(self) -> str:
        if not self.checked:
            return f"drift check skipped: {self.note}"
        if not self.breached:
            return (f"drift check passed: {self.n_new} series against the reference of "
                    f"{self.n_reference} ({self.note})")
        verdict = "BLOCKED" if self.blocking else "warning"
        lines = [f"drift {verdict}: {len(self.breaches)} global breach(es), "
                 f"{len(self.series)} of {self.n_new} series drifted ({self.note})"]
        lines += [f"  - {b}" for b in self.breaches]
        for row in self.series[:10]:
            lines.append(f"  - series {row['unique_id']}: {'; '.join(row['why'])}")
        if len(self.series) > 10:
            lines.append(f"  ... and {len(self.series) - 10} more series")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"breached": self.breached, "blocking": self.blocking}


def profile_window(drift_cfg: Any, lookback: int) -> int:
    """Points per series the profile summarises: ``drift.window``, else the lookback."""
    return int(drift_cfg.window or lookback)


def thresholds_of(drift_cfg: Any) -> DriftThresholds:
    """The thresholds of the YAML's ``drift:`` section."""
    return DriftThresholds(**drift_cfg.model_dump(
        include=set(DriftThresholds.__dataclass_fields__)))


def skipped(note: str) -> DriftReport:
    """A report for a run with nothing to compare against (first run, old champion)."""
    return DriftReport(checked=False, note=note)


def _shift(new: float, ref: float, scale: float) -> float:
    floor = 1e-9 * max(abs(ref), 1.0)
    if not (math.isfinite(new) and math.isfinite(ref)):
        return float("nan")
    return abs(new - ref) / max(scale if math.isfinite(scale) else 0.0, floor)


def _ratio(new: float, ref: float) -> float:
    """Scale ratio >= 1 (grown or shrunk by this factor); inf when one side is ~0."""
    if not (math.isfinite(new) and math.isfinite(ref)):
        return float("nan")
    lo, hi = sorted((new, ref))
    if hi <= 1e-12:
        return 1.0
    return hi / lo if lo > 1e-12 else float("inf")


def _reasons(level: float, ratio: float, missing: float, t: DriftThresholds) -> list[str]:
    why = []
    if level > t.level_shift:
        why.append(f"level shifted by {level:.2f} reference scales (> {t.level_shift:g})")
    if ratio > t.scale_ratio:
        why.append(f"scale changed by a factor {ratio:.2f} (> {t.scale_ratio:g})")
    if missing > t.missing_rate:
        why.append(f"missing rate rose by {missing:.1%} (> {t.missing_rate:.1%})")
    return why


def check_drift(profile: dict[str, Any], new_frame: pd.DataFrame,
                thresholds: DriftThresholds, on_breach: str = "warn",
                note: str = "") -> DriftReport:
    """Compare ``new_frame`` (unique_id, ds, y) with a :func:`reference_profile`."""
    _check_version(profile)
    new = _series_stats(new_frame, int(profile["window"]))
    new.index = new.index.astype(str)
    return _compare(profile, new, thresholds, on_breach, note)


def check_profile_drift(profile: dict[str, Any], new_profile: dict[str, Any],
                        thresholds: DriftThresholds, on_breach: str = "warn",
                        note: str = "") -> DriftReport:
    """Compare today's :func:`reference_profile` (merged from shards) with the champion's;
    skipped when they measure different windows (the config changed since)."""
    _check_version(profile)
    if int(new_profile["window"]) != int(profile["window"]):
        return skipped(f"the champion's profile measures the last {profile['window']} points "
                       f"of each series, this config {new_profile['window']} (features."
                       "lookback or drift.window changed)")
    return _compare(profile, _stats_of(new_profile), thresholds, on_breach, note)


def _check_version(profile: Any) -> None:
    if not isinstance(profile, dict) or profile.get("version") != PROFILE_VERSION:
        raise DataError(f"reference profile has an unknown format (version "
                        f"{profile.get('version') if isinstance(profile, dict) else '?'})",
                        hint="retrain to save a fresh profile with the champion")


def _stats_of(profile: dict[str, Any]) -> pd.DataFrame:
    """A profile's per-series level, scale and missing rate (NaN where not finite)."""
    return pd.DataFrame.from_dict(profile["series"], orient="index").reindex(
        columns=["level", "scale", "missing_rate"]).astype("float64")


def _compare(profile: dict[str, Any], new: pd.DataFrame, thresholds: DriftThresholds,
             on_breach: str, note: str) -> DriftReport:
    """The drift report of today's per-series stats ``new`` (string IDs) against
    ``profile``."""
    ref = _stats_of(profile)
    ref_ids, new_ids = set(ref.index), set(new.index)
    common = sorted(ref_ids & new_ids)
    added, vanished = sorted(new_ids - ref_ids), sorted(ref_ids - new_ids)
    t = thresholds

    rows = []
    for uid in common:
        r, n = ref.loc[uid], new.loc[uid]
        level = _shift(n.level, r.level, r.scale)
        ratio = _ratio(n.scale, r.scale)
        missing = float(n.missing_rate - r.missing_rate)
        why = _reasons(level, ratio, missing, t)
        if why:
            rows.append({"unique_id": uid, "level_shift": level, "scale_ratio": ratio,
                         "missing_rate_rise": missing, "why": why})

    r, n = ref.loc[common], new.loc[common]
    g_level = _shift(float(n.level.sum()), float(r.level.sum()),
                     math.sqrt(float((r.scale ** 2).sum())))
    g_ratio = _ratio(math.sqrt(float((n.scale ** 2).sum())),
                     math.sqrt(float((r.scale ** 2).sum())))
    g_missing = float(n.missing_rate.mean() - r.missing_rate.mean()) if common else 0.0
    n_ref = len(ref_ids)
    share = len(rows) / len(common) if common else 0.0
    new_share = len(added) / n_ref if n_ref else 0.0
    vanished_share = len(vanished) / n_ref if n_ref else 0.0
    breaches = [f"total of the {len(common)} common series: {w}"
                for w in _reasons(g_level, g_ratio, g_missing, t)] if common else []
    if share > t.series_share:
        breaches.append(f"{len(rows)} of {len(common)} series drifted ({share:.0%} > "
                        f"{t.series_share:.0%})")
    if new_share > t.new_series:
        breaches.append(f"{len(added)} new series ({new_share:.0%} of the reference's "
                        f"{n_ref} > {t.new_series:.0%}), e.g. {', '.join(added[:5])}")
    if vanished_share > t.vanished_series:
        breaches.append(f"{len(vanished)} series vanished ({vanished_share:.0%} > "
                        f"{t.vanished_series:.0%}), e.g. {', '.join(vanished[:5])}")
    if not common:
        breaches.append("no series in common with the reference")
    measures = {"level_shift": _num(g_level), "scale_ratio": _num(g_ratio),
                "missing_rate_rise": g_missing, "series_share": share,
                "new_series_share": new_share, "vanished_series_share": vanished_share}
    rows.sort(key=lambda row: -np.nan_to_num(row["level_shift"], nan=0.0, posinf=1e300))
    return DriftReport(True, note, on_breach, n_ref, len(new_ids), measures, breaches, rows,
                       added, vanished)


class DriftBlocked(DataError):
    """The drift check breached under ``drift.on_breach: block``: the retrain stopped
    before training (exit code 3, like data that failed validation)."""

    def __init__(self, report: DriftReport) -> None:
        self.report = report
        super().__init__(report.summary(),
                         hint="check the new data; if the change is real, train on it with "
                         "`deepcast train` (no drift check) or set drift.on_breach: warn")
