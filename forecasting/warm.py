"""Warm start: a new network begins from a fitted one's weights instead of random ones.

The nightly loop retrains on yesterday's data plus one day; starting from last night's
weights and fitting a few epochs reaches the same place in a fraction of the time
(neuralforecast has no warm start: its issues #1414, #1440, #1322). Two fitted models can
share weights only when they are the same network on the same inputs:
:func:`incompatibility` says why not (family, options, windows, covariate inputs,
categories, scaler), and :class:`WarmStart` copies the weights layer by layer into the new
network, extending a series-ID embedding to new series (their rows start at the mean of
the learned ones).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SERIES_EMBEDDING = "series_embedding"  # the layer KerasForecaster names


@dataclass
class WarmStart:
    """Weights to start a fit from: ``source`` (a fitted ``keras.Model``; None: a cold
    start, :attr:`note` says why), fitted for at most ``epochs`` more (0: used as they
    are); ``id_rows[k]`` is
    the source's embedding row of the new series code ``k`` (-1: a series the source never
    saw). ``applied`` and ``note`` say what :meth:`apply` did; the source is let go once
    applied."""

    source: Any
    epochs: int
    label: str  # where the weights come from, e.g. "champion v12"
    id_rows: np.ndarray | None = None
    applied: bool = False
    note: str = ""
    #: used as it is (no epochs): the source fit's training record, saved on with it
    seen: dict | None = None

    @classmethod
    def cold(cls, label: str, why: str) -> WarmStart:
        """A cold start, and why (nothing to apply)."""
        return cls(None, 0, label, note=f"cold start: {why}")

    def apply(self, model: Any) -> bool:
        """Copy the source's weights into ``model`` (built, not yet fitted); False, with
        :attr:`note` saying why, when the two networks differ (``model`` untouched)."""
        if self.source is None:
            return False
        ours = [layer for layer in model.layers if layer.weights]
        theirs = [layer for layer in self.source.layers if layer.weights]
        if len(ours) != len(theirs):
            return self._cold(f"the network has {len(ours)} layers with weights, the "
                              f"source {len(theirs)}")
        by_name = {layer.name: layer for layer in theirs}
        if set(by_name) == {layer.name for layer in ours}:
            # the same layers: pair them by name (a graph's layer order can change between
            # versions of a family, e.g. TiDE's mask projection, while names stay)
            theirs = [by_name[layer.name] for layer in ours]
        plan = []
        for mine, old in zip(ours, theirs, strict=True):
            weights = [np.asarray(w) for w in old.get_weights()]
            if mine.name == SERIES_EMBEDDING and self.id_rows is not None:
                weights = [extend_rows(weights[0], self.id_rows)]
            shapes = [tuple(w.shape) for w in mine.get_weights()]
            if type(mine) is not type(old) or shapes != [w.shape for w in weights]:
                return self._cold(f"layer {mine.name!r} differs from the source's "
                                  f"{old.name!r} ({type(old).__name__} "
                                  f"{[w.shape for w in weights]} -> "
                                  f"{type(mine).__name__} {shapes})")
            plan.append((mine, weights))
        for layer, weights in plan:
            layer.set_weights(weights)
        self.applied, self.note = True, f"warm start from {self.label}" + (
            "" if self.epochs else ", used as it is (no epochs)")
        self.source = None
        return True

    def _cold(self, why: str) -> bool:
        self.applied, self.note = False, f"cold start: {why}"
        return False


def extend_rows(table: np.ndarray, id_rows: np.ndarray) -> np.ndarray:
    """The embedding table of the new vocabulary: row ``k`` is the source's row
    ``id_rows[k]``, or the mean of the source's learned rows (1..) for a new series."""
    mean = table[1:].mean(axis=0) if len(table) > 1 else table[0]
    out = np.repeat(mean[None, :], len(id_rows), axis=0)
    known = id_rows >= 0
    out[known] = table[id_rows[known]]
    return out.astype(table.dtype)


def id_rows(old_ids: dict[str, int], new_ids: dict[str, int]) -> np.ndarray:
    """For every code of the new series vocabulary (0: unseen, then 1..n), the source's
    code of the same series (-1 for a new series; 0 -> 0)."""
    rows = np.full(len(new_ids) + 1, -1, dtype=np.int64)
    rows[0] = 0
    for series, code in new_ids.items():
        rows[code] = old_ids.get(series, -1)
    return rows


def incompatibility(old: Any, new: Any, encoder: Any, scaler: Any) -> str | None:
    """Why the fitted predictor ``old`` cannot start forecaster ``new`` (to be fit with
    ``encoder`` and ``scaler``), or None when it can."""
    f = old.forecaster
    if getattr(f, "model", None) is None:
        return f"the source {f.name!r} ({f.family}) has no network weights"
    if f.family != new.family:
        return f"the family changed ({f.family} -> {new.family})"
    changed = sorted(k for k in {*f.options, *new.options}
                     if f.options.get(k) != new.options.get(k))
    if changed:
        return "options changed: " + ", ".join(
            f"{k} {f.options.get(k)!r} -> {new.options.get(k)!r}" for k in changed)
    if f.spec != new.spec:
        return f"the windows changed ({_spec(f.spec)} -> {_spec(new.spec)})"
    mine, theirs = asdict(new.inputs), asdict(f.inputs)
    mine.pop("n_series"), theirs.pop("n_series")
    if mine != theirs:
        return "the covariate inputs changed"
    why = _encoder_change(old.encoder, encoder)
    if why:
        return why
    before, after = _scaling(old.scaler), _scaling(scaler)
    if before != after:
        return f"the scaling changed ({before} -> {after})"
    return None


def _spec(spec: Any) -> str:
    return f"lookback {spec.lookback}, horizon {spec.horizon}"


def _encoder_change(old: Any, new: Any) -> str | None:
    """What differs between two covariate encoders that the weights depend on: columns,
    calendar features, categories (the series vocabulary may grow)."""
    if (old is None) != (new is None):
        return "covariates were added or removed"
    if old is None:
        return None
    if old.spec != new.spec:
        return "the covariate columns changed"
    for col, vocab in new.vocab.items():
        added = sorted(set(vocab) - set(old.vocab.get(col, {})))
        if added:
            return f"new categories of {col!r}: {', '.join(added[:5])}"
        if vocab != old.vocab.get(col):
            return f"the categories of {col!r} changed"
    return None


def _scaling(scaler: Any) -> str:
    return f"scaler {scaler.method}, target_transform {scaler.target_transform}"


__all__ = ["WarmStart", "extend_rows", "id_rows", "incompatibility"]
