"""Per-series scaling, fit on the training span only (no leakage from the holdout).

Stateful class, stateless helpers: ``fit`` learns one (loc, scale) per series id from a
prefix of each series; ``transform`` / ``inverse_transform`` apply them. Parameters are
stored by series id (JSON), so a forecast on new data reuses the training statistics.
Series unseen at fit time fall back to statistics of the history given at forecast time
(documented in the README).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepcast.features.windows import Panel

_EPS = 1e-8
_BLOCK = 1 << 20  # points per vectorised block of _stats


class SeriesScaler:
    """Standard (mean/std) or identity scaling per series."""

    def __init__(self, method: str = "standard") -> None:
        if method not in ("standard", "none"):
            raise ValueError(f"unknown scaler {method!r}; expected 'standard' or 'none'")
        self.method = method
        self.params_: dict[str, tuple[float, float]] = {}

    def fit(self, panel: Panel, n_fit: np.ndarray | None = None) -> SeriesScaler:
        """Learn statistics from the first ``n_fit[i]`` points of each series (default: all)."""
        n_fit = panel.lengths if n_fit is None else np.asarray(n_fit, dtype=np.int64)
        loc, scale = _stats(panel.values, panel.starts, panel.starts + n_fit, self.method)
        self.params_ = {
            str(i): (float(a), float(b)) for i, a, b in zip(panel.ids, loc, scale, strict=True)
        }
        return self

    def params_for(self, panel: Panel) -> tuple[np.ndarray, np.ndarray]:
        """(loc, scale) per series of ``panel``; unseen ids use their own history."""
        known = [self.params_.get(sid) for sid in panel.ids]
        missing = np.array([p is None for p in known], dtype=bool)
        loc, scale = np.zeros(panel.n_series), np.ones(panel.n_series)
        if missing.any():  # statistics of the given history, for the unseen series only
            loc[missing], scale[missing] = _stats(panel.values, panel.starts[missing],
                                                  panel.ends[missing], self.method)
        if (~missing).any():
            loc[~missing], scale[~missing] = np.array(
                [p for p in known if p is not None], dtype=np.float64).T
        return loc, scale

    def unseen(self, ids: np.ndarray) -> list[str]:
        """Ids with no fitted statistics."""
        return [str(i) for i in ids if str(i) not in self.params_]

    def transform(self, panel: Panel) -> Panel:
        loc, scale = self.params_for(panel)
        lengths = panel.lengths
        return panel.with_values(
            (panel.values - np.repeat(loc, lengths)) / np.repeat(scale, lengths)
        )

    def inverse_transform(self, panel: Panel, yhat: np.ndarray) -> np.ndarray:
        """Undo scaling of per-series predictions ``yhat`` (n_series, ...)."""
        loc, scale = self.params_for(panel)
        shape = (-1,) + (1,) * (yhat.ndim - 1)
        return yhat * scale.reshape(shape) + loc.reshape(shape)

    def to_dict(self) -> dict[str, Any]:
        ids = list(self.params_)
        return {
            "method": self.method,
            "ids": ids,
            "loc": [self.params_[i][0] for i in ids],
            "scale": [self.params_[i][1] for i in ids],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesScaler:
        obj = cls(data["method"])
        obj.params_ = {
            str(i): (float(a), float(b))
            for i, a, b in zip(data["ids"], data["loc"], data["scale"], strict=True)
        }
        return obj


def _stats(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
           method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment mean/std over values[lo:hi], vectorised over blocks of whole segments
    of about ``_BLOCK`` points: the float64 temporaries are a block's size, not the panel's
    (at 10M points they would be 400 MB)."""
    n = len(lo)
    if method == "none" or n == 0:
        return np.zeros(n), np.ones(n)
    cnt = np.maximum(hi - lo, 0)
    cuts = np.searchsorted(np.cumsum(cnt), np.arange(_BLOCK, int(cnt.sum()), _BLOCK))
    edges = np.unique(np.concatenate([[0], cuts + 1, [n]]).clip(0, n))
    mean, std = np.empty(n), np.empty(n)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mean[a:b], std[a:b] = _block_stats(values, lo[a:b], cnt[a:b])
    std = np.where(std < _EPS * np.maximum(np.abs(mean), 1.0), 1.0, std)
    return mean, std


def _block_stats(values: np.ndarray, lo: np.ndarray,
                 cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(lo)
    seg = np.repeat(np.arange(n), cnt)
    idx = np.arange(int(cnt.sum()), dtype=np.int64) + np.repeat(lo - np.cumsum(cnt) + cnt, cnt)
    v = values[idx].astype(np.float64)
    denom = np.maximum(cnt, 1)
    mean = np.bincount(seg, weights=v, minlength=n) / denom
    var = np.bincount(seg, weights=(v - mean[seg]) ** 2, minlength=n) / denom
    return mean, np.sqrt(var)
