"""Target transforms applied before per-series scaling and inverted on every forecast
column (``features.target_transform``).

``log1p`` tames multiplicative growth and skewed counts (y > -1); ``boxcox`` (Box & Cox
1964) fits one lambda per series on its training span by maximum likelihood (scipy's
``boxcox_normmax``), clipped to [-1, 2] as forecasting libraries do so that a short or odd
series cannot pick an extreme power (y > 0). Both are monotone, so quantiles stay ordered
after the inverse; a forecast outside the transform's range is clipped to its edge (0 for
Box-Cox with lambda > 0) rather than returning NaN.
"""

from __future__ import annotations

import numpy as np

from deepcast.features.errors import DataError

TRANSFORMS = ("none", "log1p", "boxcox")
LAMBDA_RANGE = (-1.0, 2.0)
_DOMAIN = {"log1p": (-1.0, "greater than -1"), "boxcox": (0.0, "greater than 0")}


def check_domain(transform: str, values: np.ndarray, ids: np.ndarray, lengths: np.ndarray
                 ) -> None:
    """Raise a :class:`DataError` naming the series with values the transform cannot take."""
    if transform not in _DOMAIN:
        return
    low, words = _DOMAIN[transform]
    bad = np.asarray(values, dtype=np.float64) <= low
    if not bad.any():
        return
    per_series = np.add.reduceat(bad, np.r_[0, np.cumsum(lengths)[:-1]]) if len(lengths) else []
    names = [str(i) for i, n in zip(ids, per_series, strict=True) if n]
    raise DataError(
        f"features.target_transform: {transform} needs every y {words}; "
        f"{len(names)} series have other values: {', '.join(names[:5])}"
        f"{' ...' if len(names) > 5 else ''}",
        hint="use target_transform: log1p for data with zeros, none for data that can be "
        "negative, or drop these series")


def fit_lambda(values: np.ndarray) -> float:
    """Box-Cox lambda of one series' training values (MLE), clipped to LAMBDA_RANGE; 1
    (no change but a shift) for a series too short or too flat to estimate it."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 4 or np.ptp(v) <= 1e-12 * max(abs(float(v.mean())), 1.0):
        return 1.0
    with np.errstate(all="ignore"):
        lam = float(stats.boxcox_normmax(v, method="mle"))
    return float(np.clip(lam, *LAMBDA_RANGE)) if np.isfinite(lam) else 1.0


def forward(transform: str, y: np.ndarray, lam: np.ndarray | float = 1.0) -> np.ndarray:
    """The transform of ``y`` (``lam`` broadcast against ``y`` for boxcox)."""
    y = np.asarray(y, dtype=np.float64)
    if transform == "log1p":
        return np.log1p(y)
    if transform == "boxcox":
        lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), y.shape)
        with np.errstate(all="ignore"):
            powered = (np.power(y, lam) - 1.0) / np.where(lam == 0, 1.0, lam)
            return np.where(lam == 0, np.log(y), powered)
    return y


def inverse(transform: str, z: np.ndarray, lam: np.ndarray | float = 1.0) -> np.ndarray:
    """Undo :func:`forward`; values outside its range map to the range's edge."""
    z = np.asarray(z, dtype=np.float64)
    if transform == "log1p":
        return np.expm1(z)
    if transform == "boxcox":
        lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), z.shape)
        with np.errstate(all="ignore"):
            # lambda > 0: below the range is y = 0; lambda < 0: above it y is unbounded,
            # kept finite (a base of 1e-6)
            base = np.maximum(lam * z + 1.0, np.where(lam < 0, 1e-6, 0.0))
            powered = np.power(base, 1.0 / np.where(lam == 0, 1.0, lam))
            return np.where(lam == 0, np.exp(z), powered)
    return z
