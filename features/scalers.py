"""Per-series scaling, fit on the training span only (no leakage from the holdout).

Stateful class, stateless helpers: ``fit`` learns one (loc, scale) per series id from a
prefix of each series; ``transform`` / ``inverse_transform`` apply them. Parameters are
stored by series id (JSON), so a forecast on new data reuses the training statistics.
Series unseen at fit time fall back to statistics of the history given at forecast time
(documented in the README). A target transform (``features.target_transform``, see
``transforms.py``) is applied before the scaling and undone after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deepcast.features import transforms
from deepcast.features.windows import Panel

_EPS = 1e-8
_BLOCK = 1 << 20  # points per vectorised block of _stats


@dataclass(frozen=True)
class SeriesParams:
    """The scaling of a panel's series, looked up once: transform and inverse share it."""

    transform: str
    loc: np.ndarray  # (n_series,)
    scale: np.ndarray
    lam: np.ndarray  # Box-Cox lambda per series (1 for other transforms)

    def apply(self, values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Transform and scale ``values`` (the series back to back, ``lengths`` each)."""
        z = transforms.forward(self.transform, values, np.repeat(self.lam, lengths))
        return (z - np.repeat(self.loc, lengths)) / np.repeat(self.scale, lengths)

    def invert(self, yhat: np.ndarray) -> np.ndarray:
        """Unscale and untransform per-series predictions ``yhat`` (n_series, ...)."""
        shape = (-1,) + (1,) * (yhat.ndim - 1)
        z = yhat * self.scale.reshape(shape) + self.loc.reshape(shape)
        return transforms.inverse(self.transform, z, self.lam.reshape(shape))


class SeriesScaler:
    """Standard (mean/std) or identity scaling per series, after an optional transform."""

    def __init__(self, method: str = "standard", transform: str = "none") -> None:
        if method not in ("standard", "none"):
            raise ValueError(f"unknown scaler {method!r}; expected 'standard' or 'none'")
        if transform not in transforms.TRANSFORMS:
            raise ValueError(f"unknown target transform {transform!r}; expected one of "
                             f"{', '.join(transforms.TRANSFORMS)}")
        self.method, self.target_transform = method, transform
        self.params_: dict[str, tuple[float, float]] = {}
        self.lambdas_: dict[str, float] = {}

    def fit(self, panel: Panel, n_fit: np.ndarray | None = None) -> SeriesScaler:
        """Learn statistics from the first ``n_fit[i]`` points of each series (default: all)."""
        n_fit = panel.lengths if n_fit is None else np.asarray(n_fit, dtype=np.int64)
        transforms.check_domain(self.target_transform, panel.values, panel.ids, panel.lengths)
        lam = self._fit_lambdas(panel, panel.starts, panel.starts + n_fit)
        self.lambdas_ = ({str(i): float(v) for i, v in zip(panel.ids, lam, strict=True)}
                         if self.target_transform == "boxcox" else {})
        values = transforms.forward(self.target_transform, panel.values,
                                    np.repeat(lam, panel.lengths))
        loc, scale = _stats(values, panel.starts, panel.starts + n_fit, self.method)
        self.params_ = {
            str(i): (float(a), float(b)) for i, a, b in zip(panel.ids, loc, scale, strict=True)
        }
        return self

    def _fit_lambdas(self, panel: Panel, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        if self.target_transform != "boxcox":
            return np.ones(len(lo))
        return np.array([transforms.fit_lambda(panel.values[a:b]) for a, b in
                         zip(lo, hi, strict=True)])

    def params_for(self, panel: Panel) -> SeriesParams:
        """The scaling of every series of ``panel``; unseen ids use their own history."""
        transforms.check_domain(self.target_transform, panel.values, panel.ids, panel.lengths)
        known = [self.params_.get(sid) for sid in panel.ids]
        missing = np.array([p is None for p in known], dtype=bool)
        loc, scale = np.zeros(panel.n_series), np.ones(panel.n_series)
        lam = np.array([self.lambdas_.get(str(sid), 1.0) for sid in panel.ids])
        if missing.any():  # statistics of the given history, for the unseen series only
            lo, hi = panel.starts[missing], panel.ends[missing]
            lam[missing] = self._fit_lambdas(panel, lo, hi)
            values = transforms.forward(self.target_transform, panel.values,
                                        np.repeat(lam, panel.lengths))
            loc[missing], scale[missing] = _stats(values, lo, hi, self.method)
        if (~missing).any():
            loc[~missing], scale[~missing] = np.array(
                [p for p in known if p is not None], dtype=np.float64).T
        return SeriesParams(self.target_transform, loc, scale, lam)

    def unseen(self, ids: np.ndarray) -> list[str]:
        """Ids with no fitted statistics."""
        return [str(i) for i in ids if str(i) not in self.params_]

    def transform(self, panel: Panel) -> Panel:
        """``panel`` transformed and scaled."""
        return panel.with_values(self.params_for(panel).apply(panel.values, panel.lengths))

    def inverse_transform(self, panel: Panel, yhat: np.ndarray) -> np.ndarray:
        """Undo scaling (and the transform) of per-series predictions ``yhat`` (n_series, ...)."""
        return self.params_for(panel).invert(yhat)

    def to_dict(self) -> dict[str, Any]:
        ids = list(self.params_)
        out = {
            "method": self.method,
            "ids": ids,
            "loc": [self.params_[i][0] for i in ids],
            "scale": [self.params_[i][1] for i in ids],
        }
        if self.target_transform != "none":
            out["transform"] = self.target_transform
            out["lambda"] = [self.lambdas_.get(i, 1.0) for i in ids]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeriesScaler:
        """A saved scaler (bundles without ``transform`` are from before transforms)."""
        obj = cls(data["method"], data.get("transform", "none"))
        obj.params_ = {
            str(i): (float(a), float(b))
            for i, a, b in zip(data["ids"], data["loc"], data["scale"], strict=True)
        }
        if obj.target_transform == "boxcox":
            obj.lambdas_ = {str(i): float(v)
                            for i, v in zip(data["ids"], data["lambda"], strict=True)}
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
