"""Where tonight's warm start comes from (``training.warm_start``), and whether tonight is a
cold night.

The source is the train run that fitted the registry version ``warm_start`` names (the
champion, usually): every model of tonight's config starts from the model of the same name
in that run where the two networks match (``forecasting.warm``). Each warm night adds one to
the run's ``deepcast.warm_nights`` tag; after ``cold_every - 1`` warm nights in a row the
next night trains every model cold, so drift cannot accumulate in the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from deepcast.features.errors import ConfigError
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
                        t.warm_start_epochs)
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
    old = tracker.registry.load_logged(uri).predictor
    why = incompatibility(old, forecaster, prep.encoder, prep.scaler)
    if why:
        return WarmStart.cold(source.label, why)
    rows = None
    if prep.encoder is not None and forecaster.inputs.n_series and old.encoder is not None:
        rows = id_rows(old.encoder.ids, prep.encoder.ids)
    return WarmStart(old.forecaster.model, source.epochs, source.label, rows)

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


__all__ = ["StartVerdict", "WarmPlan", "WarmSource", "start_verdict", "warm_plan",
           "warm_start_for"]
