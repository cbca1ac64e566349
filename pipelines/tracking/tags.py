"""Every ``deepcast.*`` tag key that deepcast writes on MLflow runs and model versions.

Defined once here so that the writer, the gate, the history tables and the flows cannot
drift apart: the keys are what users filter on in the MLflow UI and what older runs carry,
so their text never changes. Only the standard library: cheap to use from any stage.
"""

from __future__ import annotations

import re

PREFIX = "deepcast."

# ---- runs: where a run came from ----------------------------------------------------
PIPELINE = "deepcast.pipeline"
PIPELINE_FILE = "deepcast.pipeline_file"
FILE_SHA256 = "deepcast.file_sha256"
STAGE = "deepcast.stage"  # train / backtest / tune (parents), backtest (model runs)
DATA_PATH = "deepcast.data_path"
SHARDS = "deepcast.shards"  # a train run from shards: how many
DATA_SHA256 = "deepcast.data_sha256"  # also on model versions
DATA_START = "deepcast.data_start"
DATA_END = "deepcast.data_end"
MODEL_TYPE = "deepcast.model_type"  # also on model versions
BEST_MODEL = "deepcast.best_model"
SKIPPED = "deepcast.skipped_models"  # models auto.time_limit left untrained

# ---- model runs: did the fit converge (false: stopped by max_epochs while improving) --
CONVERGED = "deepcast.converged"  # "true" / "false"; absent on models that do not train
CONVERGENCE_REASON = "deepcast.convergence_reason"
CONFORMAL_NOTES = "deepcast.conformal_notes"  # conformal levels left out, and why
MODEL_NOTES = "deepcast.model_notes"  # series a local model forecast by its fallback
MODEL_URI = "deepcast.model_uri"  # the model run's logged model (what a warm start loads)
WARM_START = "deepcast.warm_start"  # "warm" / "cold" on model runs of a warm_start config
WARM_START_NOTE = "deepcast.warm_start_note"  # where the weights came from, or why cold
WARM_START_FROM = "deepcast.warm_start_from"  # registry version the weights came from
WARM_START_RUN = "deepcast.warm_start_run"  # the train run that fitted them
WARM_START_SELECTION = "deepcast.warm_start_selection"  # the selection fit's: warm / cold
WARM_START_SELECTION_NOTE = "deepcast.warm_start_selection_note"
WARM_NIGHTS = "deepcast.warm_nights"  # parent runs: warm-started trains in a row (0: cold)

# ---- runs: which process wrote them (closing runs of killed processes) --------------
HOST = "deepcast.host"
PID = "deepcast.pid"
END_REASON = "deepcast.end_reason"

# ---- tune runs --------------------------------------------------------------------------
TRIAL_STATE = "deepcast.trial_state"
BEST_TRIAL = "deepcast.best_trial"
TUNED_YAML = "deepcast.tuned_yaml"

# ---- the gate's decision, on the parent train run -----------------------------------
PROMOTION_DECISION = "deepcast.promotion.decision"
PROMOTION_REASON = "deepcast.promotion.reason"
PROMOTION_CANDIDATE_VERSION = "deepcast.promotion.candidate_version"
PROMOTION_CANDIDATE_SCORE = "deepcast.promotion.candidate_score"
PROMOTION_CHAMPION_VERSION = "deepcast.promotion.champion_version"
PROMOTION_CHAMPION_SCORE = "deepcast.promotion.champion_score"
PROMOTION_SEASONAL_NAIVE_SCORE = "deepcast.promotion.seasonal_naive_score"
PROMOTION_GATE = "deepcast.promotion.gate"
PROMOTION_CHAMPION_NOTE = "deepcast.promotion.champion_note"
PROMOTION_LEVEL = "deepcast.promotion.level"  # the hierarchy level whose scores decided


def gate_level_metric(role: str, metric: str, level: str) -> str:
    """Run metric of one role's (candidate, champion, seasonal_naive) gate score at one
    hierarchy level, e.g. ``gate_candidate_mase_state/industry`` (characters MLflow does
    not take in a metric name become ``_``)."""
    return re.sub(r"[^\w\-./ ]", "_", f"gate_{role}_{metric}_{level}")

# ---- model versions: what was registered, and the gate's decision on it -------------
MODEL_NAME = "deepcast.model_name"
PARENT_RUN_ID = "deepcast.parent_run_id"
DECISION = "deepcast.decision"
REASON = "deepcast.reason"
GATE = "deepcast.gate"
CHAMPION_SCORE = "deepcast.champion_score"
SEASONAL_NAIVE_SCORE = "deepcast.seasonal_naive_score"

# ---- model versions: the champion history (promotions, rollbacks) -------------------
PROMOTED_AT = "deepcast.promoted_at"
REPLACED_VERSION = "deepcast.replaced_version"
PROMOTED_BECAUSE = "deepcast.promotion_reason"  # the version tag, not PROMOTION_REASON
ROLLED_BACK_AT = "deepcast.rolled_back_at"
ROLLED_BACK_TO = "deepcast.rolled_back_to"
ROLLBACK_REASON = "deepcast.rollback_reason"
RESTORED_AT_PREFIX = "deepcast.restored_at."


def holdout_score(metric: str) -> str:
    """Version tag of the candidate's holdout score on ``metric``."""
    return f"deepcast.holdout_{metric}"


def gate_score(metric: str) -> str:
    """Version tag of the candidate's score on the gate's windows on ``metric``."""
    return f"deepcast.gate_{metric}"


def restored_at(replaced: str) -> str:
    """Version tag: when this version became champion again, replacing ``replaced``."""
    return f"{RESTORED_AT_PREFIX}{replaced}"
