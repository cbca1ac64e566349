"""Series lengths that follow from a config's geometry, computed in one place.

The stages (prepare, backtest, validate, ensemble weighting, promotion) all need the same
few sums of lookback, horizon, validation and holdout spans; ``PipelineConfig.lengths``
returns them as one frozen value so no stage re-derives them by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def auto_windows(season_length: int, step: int) -> int:
    """Default backtest cut-offs: enough windows ``step`` apart to cover two seasons or 100
    points per series, whichever is fewer; at least 3 (a spread), at most 20."""
    return min(max(3, -(-min(2 * season_length, 100) // step)), 20)


@dataclass(frozen=True)
class Lengths:
    """The geometry of a run in steps (all resolved: no None defaults left).

    ``test_size`` is the holdout at the end of every series, ``val_size`` the validation
    span before it (``training.val_size``, default horizon), ``step`` the distance between
    backtest cut-offs (``evaluation.backtest.step``, default horizon).
    """

    lookback: int
    horizon: int
    val_size: int
    test_size: int
    step: int
    n_windows: int
    pad: bool  # data.short_series == "pad"

    @property
    def full(self) -> int:
        """Shortest series trainable without padding: lookback + horizon + val_size +
        test_size (one full training window, validation and holdout)."""
        return self.lookback + self.horizon + self.val_size + self.test_size

    @property
    def padded(self) -> int:
        """Shortest series trainable with ``short_series: pad``: one observed input point
        before a training target, plus validation and holdout."""
        return self.horizon + self.val_size + self.test_size + 1

    @property
    def min_length(self) -> int:
        """Shortest series kept for training under the ``short_series`` policy."""
        return self.padded if self.pad else self.full

    @property
    def min_train_length(self) -> int:
        """Points a series needs before a cut-off to be fit on (no holdout after it)."""
        return self.min_length - self.test_size

    @property
    def backtest_span(self) -> int:
        """Points from the first backtest cut-off to a series' end: the first cut-off of a
        series of length n is n - backtest_span."""
        return self.horizon + (self.n_windows - 1) * self.step

    @property
    def holdout_origins(self) -> int:
        """Forecast origins of ``horizon`` steps that cover the holdout (ceil division)."""
        return -(-self.test_size // self.horizon)

    def with_holdout(self, test_size: int | None) -> Lengths:
        """The same geometry with another holdout (None keeps this one): a backtest fit
        prepares its training span with ``holdout=0``."""
        return self if test_size is None else replace(self, test_size=test_size)
