"""Where tonight's warm start comes from (``training.warm_start``), and whether tonight is a
cold night.

The source is the train run that fitted the registry version ``warm_start`` names (the
champion, usually): every model of tonight's config starts from the model of the same name
in that run where the two networks match (``forecasting.warm``). Each warm night adds one to
the run's ``deepcast.warm_nights`` tag; after ``cold_every - 1`` warm nights in a row the
next night trains every model cold, so drift cannot accumulate in the weights.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from deepcast.features.errors import ConfigError
from deepcast.features.schema import DS, ID
from deepcast.forecasting import graphs
from deepcast.forecasting.warm import WarmStart, id_rows, incompatibility
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.tracking import tags as tag

log = logging.getLogger("deepcast")


@dataclass(frozen=True)
class WarmSource:
    """The run whose models start tonight's (plain data: it travels to Dask workers)."""

    ref: str  # the alias or version the config names
    version: str  # the registry version it resolved to
    parent_run_id: str  # the train run that fitted it
    models: dict[str, str]  # model name -> logged model URI in that run
    epochs: int  # training.warm_start_epochs
    runs: dict[str, str] = field(default_factory=dict)  # model name -> its model run's id
    selection_epochs: int = 0  # training.warm_start_selection_epochs
    #: nights in a row a selection fit may be used untrained (cold_every - 1; 0: never)
    reuse_limit: int = 0
    #: the most new points per series since a selection fit's training end for it to be
    #: used untrained: the selection backtest's span (it never predates tonight's windows)
    reuse_points: int = 0

    @property
    def label(self) -> str:
        return f"{self.ref} v{self.version}" if self.ref != self.version else f"v{self.version}"


@dataclass(frozen=True)
class WarmPlan:
    """Tonight's warm start: the source (None: every model cold), why not when cold, and
    the warm nights in a row this run makes (0 for a cold night)."""

    source: WarmSource | None
    note: str
    nights: int

    def tags(self) -> dict[str, str]:
        """The parent run's tags: the warm-night count, and the whole-run note."""
        return {tag.WARM_NIGHTS: str(self.nights), tag.WARM_START_NOTE: self.note}


def warm_plan(cfg: PipelineConfig, tracker: Any) -> WarmPlan | None:
    """Tonight's plan under ``training.warm_start`` (None when it is not set). A missing
    alias (no champion on the first night) is a cold night; a missing version number is a
    ConfigError (a typo)."""
    t = cfg.training
    if not t.warm_start:
        return None
    try:
        ref = tracker.registry.resolve(t.warm_start)
    except ConfigError:
        if t.warm_start.isdigit():
            raise
        return WarmPlan(None, f"cold start: no {t.warm_start!r} version yet", 0)
    siblings = tracker.history.sibling_models(ref.run_id) if ref.run_id else None
    if siblings is None or not siblings.uris:
        return WarmPlan(None, f"cold start: {t.warm_start} v{ref.version}'s run has no "
                        "models deepcast can warm-start from (trained before warm start)", 0)
    before = int(siblings.parent_tags.get(tag.WARM_NIGHTS, "0") or 0)
    if t.cold_every is not None and before + 1 >= t.cold_every:
        return WarmPlan(None, f"cold start: the periodic cold retrain (cold_every: "
                        f"{t.cold_every}; {before} warm nights in a row before)", 0)
    source = WarmSource(t.warm_start, ref.version, siblings.parent_run_id, siblings.uris,
                        t.warm_start_epochs, siblings.runs, t.warm_start_selection_epochs,
                        t.cold_every - 1 if t.cold_every else 0, cfg.lengths.backtest_span)
    return WarmPlan(source, f"warm start from {source.label}", before + 1)


def warm_start_for(source: WarmSource | None, label: str, forecaster: Any, prep: Any,
                   tracker: Any) -> WarmStart | None:
    """The :class:`WarmStart` of model ``label`` (``forecaster`` built, not fitted, on
    ``prep``; ``fit_model`` asks for trainable ones only): a cold one saying why where the
    source's model cannot start it; None when warm start is off."""
    if source is None:
        return None
    uri = source.models.get(label)
    if uri is None:
        return WarmStart.cold(source.label, f"{source.label}'s run has no model {label!r}")
    run = source.runs.get(label)
    try:
        seen = tracker.history.load_dict(run, SEEN_FILE) if run else None
        why = _seen_after(seen, _training_span(prep)) if seen else \
            f"{source.label}'s run of {label!r} does not record the data it was trained on"
    except Exception as exc:  # a damaged record must not fail the night: start cold
        why = f"{source.label}'s record of its training data could not be read ({exc})"
    if why:
        return WarmStart.cold(source.label, why)
    return _start_from(tracker.registry.load_logged(uri).predictor, source.label,
                       source.epochs, forecaster, prep)


def _start_from(old: Any, label: str, epochs: int, forecaster: Any, prep: Any) -> WarmStart:
    """Start ``forecaster`` (to be fit on ``prep``) from fitted predictor ``old``, or a
    cold start saying why the two differ."""
    why = incompatibility(old, forecaster, prep.encoder, prep.scaler)
    if why:
        return WarmStart.cold(label, why)
    rows = None
    if prep.encoder is not None and forecaster.inputs.n_series and old.encoder is not None:
        rows = id_rows(old.encoder.ids, prep.encoder.ids)
    return WarmStart(old.forecaster.model, epochs, label, rows)


# ---- the selection backtest's fit -----------------------------------------------------
# Tonight's selection backtest fits each model before the first of its windows inside the
# training span. The champion's own fit saw those windows, so it cannot start that fit;
# last night's selection fit saw data only up to last night's first cut-off, one step
# earlier, and can. It is saved with each model run (a predictor bundle: .keras under
# safe_mode and JSON, no pickle) with the last ``ds`` it was trained on per series, and
# tonight's fit starts from it only where that is not after tonight's cut-off.
SELECTION_FIT = "selection_fit"  # artifact folder of a model run
SEEN_FILE = "seen.json"  # per series, the last ds the fit was trained on
REUSED = "reused"  # in a selection fit's seen.json: nights it was used untrained in a row


def record_seen(prep: Any, tracker: Any, forecaster: Any) -> None:
    """Log what the model run's fit of ``forecaster`` was trained on (the last ``ds`` per
    series of ``prep``'s training span), for a trainable one, warm start on or off: a later
    night's warm start from it checks it saw nothing after that night's training span."""
    if getattr(forecaster, "trainable", False):
        tracker.log_dict(_seen(_training_span(prep)), SEEN_FILE)


def save_selection_fit(predictor: Any, prep: Any, tracker: Any) -> None:
    """Log the selection backtest's fitted ``predictor`` (trained on all of ``prep``, or
    used as it was: then with its source's record and one more night of use) with the
    model's run, for tomorrow's selection fit to start from. A failure to save costs
    tomorrow's selection fit its warm start, not tonight's run: it is warned about."""
    seen = selection_record(predictor, prep.df)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = predictor.save(Path(tmp) / SELECTION_FIT)
            (folder / SEEN_FILE).write_text(json.dumps(seen))
            tracker.log_folder(folder, SELECTION_FIT)
    except Exception as exc:
        log.warning("%s: the selection fit could not be saved for tomorrow's warm start "
                    "(%s): tomorrow's selection fit starts cold", predictor.name, exc)


def selection_record(predictor: Any, df: pd.DataFrame) -> dict[str, Any]:
    """What a selection fit saw, saved with it: the last ``ds`` per series of ``df`` (what
    it was trained on), or for a fit used as it was, its source's record with one more
    night of use (so the next night knows how stale it is)."""
    warm = getattr(predictor.forecaster, "warm_start", None)
    used = getattr(warm, "seen", None) if getattr(warm, "applied", False) else None
    return _seen(df) if used is None else {**used, REUSED: int(used.get(REUSED, 0)) + 1}


def selection_epochs(source: WarmSource, seen: dict[str, Any], new_points: int) -> int:
    """Epochs of tonight's selection fit from a saved one that ``seen`` describes, trained
    on data ending ``new_points`` points (per series, median) before tonight's span: the
    configured number; with 0, none while it has been used untrained fewer than
    ``reuse_limit`` nights in a row and is at most ``reuse_points`` old, else
    ``warm_start_epochs`` (a champion may stay for weeks: its run's selection fit, which
    every such night starts from, must not go stale)."""
    if source.selection_epochs:
        return source.selection_epochs
    fresh = int(seen.get(REUSED, 0)) < source.reuse_limit and new_points <= source.reuse_points
    return 0 if fresh else source.epochs


def new_points(seen: dict[str, list], df: pd.DataFrame) -> int:
    """Median over the series of ``df`` (a canonical frame) of its points after the last
    ``ds`` the record ``seen`` holds for that series (series it lacks: not counted)."""
    theirs = pd.Series(seen["ds"], index=[str(i) for i in seen["ids"]])
    ids = df[ID].astype(str)
    last = ids.map(theirs)
    if pd.api.types.is_datetime64_any_dtype(df[DS]):
        last = pd.to_datetime(last, format="ISO8601")
    after = (df[DS] > last).groupby(ids[last.notna()]).sum()
    return int(after.median()) if len(after) else 0


def _training_span(prep: Any) -> pd.DataFrame:
    """``prep``'s frame without its holdout (all of it for a fit without one)."""
    if prep.holdout is None:
        return prep.df
    from deepcast.forecasting.evaluate import split_holdout

    return split_holdout(prep.df, prep.holdout.size)[0]


def _seen(df: pd.DataFrame) -> dict[str, list]:
    """The last ``ds`` of each series of a canonical frame, as JSON."""
    last = _last_seen(df)
    return {"ids": [str(i) for i in last.index],
            "ds": [v if isinstance(v, int) else str(v) for v in last.tolist()]}


def keep_selection_fit(label: str, backtest: Any, plan: WarmPlan | None, tracker: Any
                       ) -> Any:
    """Under training.warm_start: how model ``label``'s selection fit (``backtest.fit``)
    started (tags on its run, and the log), and the fit saved with the run for tomorrow's
    to start from. Returns ``backtest`` without the fitted network (let go)."""
    if backtest is None or backtest.fit is None:
        return backtest
    if not backtest.fit.forecaster.trainable:
        return replace(backtest, fit=None, fit_data=None)
    began = start_verdict(plan, backtest.fit.forecaster)
    if began.tags:
        tracker.set_tags({tag.WARM_START_SELECTION: began.start,
                          tag.WARM_START_SELECTION_NOTE: began.note})
        log.info("%s: selection fit: %s", label, began.note)
    save_selection_fit(backtest.fit, backtest.fit_data, tracker)
    graphs.release(backtest.fit.forecaster.model)  # saved: the final fit may reuse its graphs
    return replace(backtest, fit=None, fit_data=None)


def selection_start_for(source: WarmSource | None, label: str, forecaster: Any, prep: Any,
                        tracker: Any) -> WarmStart | None:
    """The :class:`WarmStart` of model ``label``'s selection fit on ``prep`` (the history
    before tonight's first cut-off): from the source run's selection fit of the same model,
    or cold saying why (none saved, a different network, or it saw data after tonight's
    cut-off: that would leak the windows it is scored on). None when warm start is off."""
    from deepcast.forecasting.predictor import Predictor

    if source is None:
        return None
    run = source.runs.get(label)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = run and tracker.history.download_folder(run, SELECTION_FIT, tmp)
            if not folder:
                return WarmStart.cold(source.label, f"{source.label}'s run has no selection "
                                      f"backtest fit of {label!r} saved")
            seen = json.loads((folder / SEEN_FILE).read_text())
            leak = _seen_after(seen, prep.df)
            if leak:
                return WarmStart.cold(source.label, leak)
            old = Predictor.load(folder)
            epochs = selection_epochs(source, seen, new_points(seen, prep.df))
    except Exception as exc:  # a damaged or outdated saved fit must not fail the night
        return WarmStart.cold(source.label, f"{source.label}'s selection fit of {label!r} "
                              f"could not be loaded ({exc})")
    start = _start_from(old, f"{source.label}'s selection fit", epochs, forecaster, prep)
    start.seen = seen if epochs == 0 else None
    return start


def _last_seen(df: pd.DataFrame) -> pd.Series:
    """The last ``ds`` of each series of a canonical frame."""
    return df.groupby(ID, sort=False)[DS].last()


def _seen_after(seen: dict[str, list], df: pd.DataFrame) -> str | None:
    """Why the source's fit, which saw ``seen`` (ids and last ds), cannot start a fit on
    ``df``: it saw a point of some series after ``df``'s last one (its scores on tonight's
    windows would be in-sample); None when it did not."""
    mine = _last_seen(df)
    theirs = pd.Series(seen["ds"], index=seen["ids"])
    if pd.api.types.is_datetime64_any_dtype(mine):
        theirs = pd.to_datetime(theirs, format="ISO8601")
    mine.index = mine.index.astype(str)
    common = theirs.index.intersection(mine.index)
    later = common[(theirs[common] > mine[common]).to_numpy(dtype=bool, na_value=False)]
    if len(later):
        return (f"the source was trained on data after tonight's training span "
                f"({len(later)} series, e.g. {later[0]!s}: up to {theirs[later[0]]}, "
                f"tonight to {mine[later[0]]})")
    return None


@dataclass(frozen=True)
class StartVerdict:
    """How one model started: ``start`` "warm" / "cold" ('' for a model that does not
    train or a run without warm_start), the one-line note, and its run's tags."""

    start: str = ""
    note: str = ""
    tags: dict[str, str] | None = None

    def own_note(self, plan: WarmPlan | None) -> tuple[str, ...]:
        """The note, when it says more than the run's (a model that started cold on its
        own: changed options, new categories)."""
        return (self.note,) if plan and self.start == "cold" and self.note != plan.note \
            else ()


def start_verdict(plan: WarmPlan | None, forecaster: Any) -> StartVerdict:
    """What model run ``forecaster`` (fitted) records of its start under ``plan``."""
    if plan is None or not forecaster.trainable:
        return StartVerdict()
    warm = getattr(forecaster, "warm_start", None)
    note = warm.note if warm is not None else plan.note
    applied = warm is not None and warm.applied
    tags = {tag.WARM_START: "warm" if applied else "cold", tag.WARM_START_NOTE: note}
    if applied and plan.source is not None:
        tags |= {tag.WARM_START_FROM: plan.source.version,
                 tag.WARM_START_RUN: plan.source.parent_run_id}
    return StartVerdict("warm" if applied else "cold", note, tags)


__all__ = ["REUSED", "StartVerdict", "WarmPlan", "WarmSource", "keep_selection_fit",
           "new_points", "record_seen", "save_selection_fit", "selection_epochs",
           "selection_record", "selection_start_for", "start_verdict", "warm_plan",
           "warm_start_for"]
