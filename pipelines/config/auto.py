"""``models: auto``: the model list, lookback and ensemble a user did not write.

A pipeline with ``models: auto`` names only its data and horizon. Before the schema checks
the config, :func:`expand_auto` writes in what a careful user would:

- ``features.lookback`` (when absent): two horizons or two seasons, whichever is longer,
  so every network sees a full seasonal cycle twice and the horizon's own length twice;
- ``models``: the preset's families, cheapest first (baselines, Theta, neural families,
  and in ``best`` ETS last);
- an ensemble ``auto`` (``method: greedy``): Caruana ensemble selection over every model,
  weights fit on the models' out-of-sample backtest forecasts inside the training span.

The best model is then chosen as for any list of models (by default on the backtest
windows inside the training span and the holdout's origins); the greedy ensemble is one
candidate, scored on weights cross-fitted over those windows (it is usually best, and the
gate still compares it with the baseline).
``auto.time_limit`` caps the training: once it is spent, models not yet started are
skipped (baselines always run) and the train output names them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from deepcast.pipelines.config.base import _Strict

AUTO_ENSEMBLE = "auto"  # name of the greedy ensemble models: auto adds

# cheapest first, so that a time limit cuts the expensive ones
PRESETS: dict[str, list[dict[str, Any]]] = {
    "fast": [
        {"type": "naive"},
        {"type": "seasonal_naive"},
        {"type": "drift"},
        {"type": "theta"},  # statistical, per series: cheap (~10 ms a series)
        {"type": "linear"},
        {"type": "mlp"},
        # a lighter N-HiTS than the default (512 x 3 per block) keeps the preset fast
        {"type": "nhits", "hidden_size": 256, "layers": 2},
    ],
    "best": [
        {"type": "naive"},
        {"type": "seasonal_naive"},
        {"type": "drift"},
        {"type": "theta"},
        {"type": "linear"},
        {"type": "mlp"},
        {"type": "mlp", "name": "mlp_deep", "hidden_size": 512, "layers": 3,
         "dropout": 0.1},
        {"type": "nhits"},
        {"type": "nbeats"},
        {"type": "tsmixer"},
        {"type": "cnn"},
        {"type": "gru"},
        {"type": "transformer"},
        {"type": "tide"},
        {"type": "ets"},  # per series at every forecast: ~1 s a series on one core
    ],
}


class AutoConfig(_Strict):
    """What ``models: auto`` trains (the ``auto:`` section)."""

    preset: Literal["fast", "best"] = Field(
        "fast", description="fast: baselines (naive, seasonal naive, drift), Theta, "
        "DLinear, an MLP and a light N-HiTS (256 x 2 per block); best: those plus a deeper "
        "MLP, N-BEATS, TSMixer, a CNN, a GRU, a transformer, TiDE and ETS. Either way a "
        "greedy ensemble `auto` of all of them is scored beside them.")
    time_limit: float | None = Field(
        None, gt=0, description="Seconds of training: once spent, models not yet started "
        "are skipped (the baselines always run; theta and ets, which fit every series, "
        "count as trained models) and named in the train output. Checked "
        "between models, so one model may run past it.")


def default_lookback(horizon: int, season_length: int) -> int:
    """Two horizons or two seasons, whichever is longer."""
    return max(2 * horizon, 2 * season_length)


def expand_auto(raw: Any) -> Any:
    """``raw`` (the YAML mapping) with ``models: auto`` written out: the preset's models,
    a default lookback where none is given, and the greedy ensemble ``auto``. Any other
    input is returned as it is (the schema reports what is wrong with it)."""
    if not isinstance(raw, dict) or raw.get("models") != "auto":
        return raw
    auto = raw.get("auto") or {}
    preset = auto.get("preset", "fast") if isinstance(auto, dict) else "fast"
    models = PRESETS.get(preset, PRESETS["fast"])  # a bad preset: the schema names it
    out = {**raw, "models": [dict(m) for m in models]}
    features, data = raw.get("features"), raw.get("data")
    if isinstance(features, dict) and "lookback" not in features \
            and isinstance(features.get("horizon"), int):
        season = data.get("season_length", 1) if isinstance(data, dict) else 1
        season = season[0] if isinstance(season, list) and season else season  # the main
        season = season if isinstance(season, int) else 1
        out["features"] = {**features,
                           "lookback": default_lookback(features["horizon"], season)}
    ensembles = raw.get("ensemble") or []
    if isinstance(ensembles, list):
        labels = [m.get("name") or m["type"] for m in models]
        out["ensemble"] = [{"name": AUTO_ENSEMBLE, "method": "greedy", "members": labels},
                           *ensembles]
    out["auto"] = {"preset": preset, **(auto if isinstance(auto, dict) else {})}
    return out
