"""Tune stage: hyperparameter search for one model of the pipeline with Optuna.

The search space lives in the YAML (``tune:``): per option a choice list, an integer range
or a float range (optionally log-scaled); options are the model's own (``units``,
``dropout`` ...) or ``training.<key>`` (``training.learning_rate`` ...). Samplers: ``tpe``
(Bayesian, Optuna's default), ``random`` and ``grid``. The objective is the best validation
loss of the fit (the windows just before the holdout), so the holdout stays untouched for
scoring; trials whose intermediate validation loss is worse than the median of earlier
trials at the same epoch are pruned. Every trial is a nested MLflow run under one parent;
the best configuration is written out as a ready-to-use pipeline YAML.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd
import yaml

from deepcast.features.errors import ConfigError, RunFailed
from deepcast.forecasting.models import families
from deepcast.pipelines.config import ENTRY_MODELS, PipelineConfig, TrainingConfig
from deepcast.pipelines.modelling import PreparedData, fit_model, prepare, training_settings
from deepcast.pipelines.tracking import tags as tag

if TYPE_CHECKING:  # annotations only: mlflow is imported where a run needs it
    from deepcast.pipelines.tracking import Tracker

log = logging.getLogger("deepcast")


@dataclass
class TuneResult:
    """All trials and the winner."""

    trials: pd.DataFrame  # number, state, value, params..., seconds, run_id
    best_params: dict[str, Any]
    best_value: float
    output: str
    seconds: float


def _suggest(trial, name: str, spec: Any):
    if spec.choice is not None:
        return trial.suggest_categorical(name, spec.choice)
    lo, hi = spec.range
    if spec.kind == "int":
        return trial.suggest_int(name, int(lo), int(hi), step=int(spec.step or 1),
                                 log=spec.log)
    return trial.suggest_float(name, float(lo), float(hi), log=spec.log,
                               step=spec.step)


def _grid(space: dict[str, Any]) -> dict[str, list[Any]]:
    grid = {}
    for name, spec in space.items():
        if spec.choice is not None:
            grid[name] = list(spec.choice)
        elif spec.kind == "int":
            lo, hi = (int(x) for x in spec.range)
            grid[name] = list(range(lo, hi + 1, int(spec.step or 1)))
        elif spec.step:
            n = int(round((spec.range[1] - spec.range[0]) / spec.step))
            grid[name] = [spec.range[0] + i * spec.step for i in range(n + 1)]
        else:
            raise ConfigError(f"tune.space.{name}: a float range needs `step` for grid search",
                              hint="give step, a choice list, or use sampler: tpe / random")
    return grid


def apply_params(cfg: PipelineConfig, model: str, params: dict[str, Any]) -> PipelineConfig:
    """``cfg`` with the trial's values set on the tuned model entry and ``training``."""
    training = {k.removeprefix("training."): v for k, v in params.items()
                if k.startswith("training.")}
    options = {k: v for k, v in params.items() if not k.startswith("training.")}
    models = []
    for entry in cfg.models:
        if entry.label == model:
            raw = {**entry.model_dump(), **options}
            entry = ENTRY_MODELS[entry.type].model_validate(raw)
        models.append(entry)
    train = TrainingConfig.model_validate({**cfg.training.model_dump(), **training})
    return cfg.model_copy(update={"models": models, "training": train})


def run_tune(df: pd.DataFrame, cfg: PipelineConfig, source_yaml: Path, tracker: Tracker,
             n_trials: int | None = None, output: str | Path | None = None,
             origin: str | None = None) -> TuneResult:
    """Search, log every trial, write the best pipeline YAML (atomically; ``origin``: what
    its header says it came from, default the source file)."""
    import optuna

    spec = cfg.tune
    if spec is None:
        raise ConfigError("the pipeline has no `tune:` section",
                          hint="add tune: {model: NAME, space: {...}} (see README)")
    n_trials = n_trials or spec.trials
    entry = next(m for m in cfg.models if m.label == spec.model)
    if not families()[entry.type].trainable:
        raise ConfigError(f"tune.model {spec.model!r} is a baseline: nothing to tune",
                          hint="tune a neural model entry")
    t0 = time.perf_counter()
    quiet = cfg.without_checkpoints()
    prep = prepare(df, quiet)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=_sampler(spec, cfg.training.seed),
                                pruner=_pruner(spec), study_name=f"{cfg.name}-{spec.model}")
    rows: list[dict[str, Any]] = []
    invalid: list[Refused] = []  # trials whose parameters the model's options refused
    study.optimize(_objective(prep, quiet, entry.type, tracker, rows, invalid),
                   n_trials=n_trials, catch=())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        _none_completed(spec.model, len(study.trials), rows, invalid)
    best = study.best_trial
    best_cfg = apply_params(cfg, spec.model, best.params)
    out = Path(output) if output else source_yaml.with_name(f"{source_yaml.stem}.tuned.yaml")
    write_tuned_yaml(source_yaml, best_cfg, spec.model, out, origin)
    tracker.log_metrics({"best_val_loss": best.value, "trials": len(study.trials)})
    tracker.set_tags({tag.BEST_TRIAL: str(best.number), tag.TUNED_YAML: str(out)})
    tracker.log_dict({"best_params": best.params, "best_value": best.value},
                     "tune/best.json")
    trials = pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
    tracker.log_frame(trials, "tune/trials.csv")
    return TuneResult(trials, dict(best.params), float(best.value), str(out),
                      time.perf_counter() - t0)


class Refused(NamedTuple):
    """A trial whose parameters the model's options refused: why, and whether one option's
    own range did (not a combination, such as heads vs d_model)."""

    trial: int
    why: str
    one_option: bool


def _none_completed(model: str, n: int, rows: list[dict[str, Any]], invalid: list[Refused]
                    ) -> None:
    """Why no trial completed: a ConfigError (exit 2) when every trial drew a value outside
    an option's own range, else a RunFailed; either way with the first reasons."""
    if len(invalid) == n and all(r.one_option for r in invalid):
        raise ConfigError(f"tune.space: no value tried for {model!r} is valid: "
                          + "; ".join(f"trial {r.trial}: {r.why}" for r in invalid[:3]),
                          hint="keep every range of tune.space within what the option "
                          "accepts (README: model options)")
    why = sorted([(r["trial"], f"trial {r['trial']} {r['state']}"
                   + (f" ({r['why']})" if r.get("why") else "")) for r in rows]
                 + [(r.trial, f"trial {r.trial} refused ({r.why})") for r in invalid])
    why = [text for _, text in why[:3]]
    raise RunFailed(f"no tuning trial of {model!r} completed ({n} pruned or failed: "
                    f"{'; '.join(why)})", hint="widen the search space or add trials")


def _sampler(spec: Any, seed: int):
    """The Optuna sampler of ``tune.sampler``, seeded."""
    import optuna

    return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "grid": lambda: optuna.samplers.GridSampler(_grid(spec.space), seed=seed),
            }[spec.sampler]()


def _pruner(spec: Any):
    """Median pruning after ``tune.prune_after`` trials, or none."""
    import optuna

    return (optuna.pruners.MedianPruner(n_startup_trials=spec.prune_after, n_warmup_steps=1)
            if spec.prune else optuna.pruners.NopPruner())


def _objective(prep: PreparedData, quiet: PipelineConfig, family: str, tracker: Tracker,
               rows: list[dict[str, Any]], invalid: list[Refused]):
    """The study's objective: one trial fit on ``prep`` as a nested run, its best
    validation loss returned; every trial's row appended to ``rows``, and why a trial's
    parameters were refused to ``invalid``."""
    import optuna

    spec = quiet.tune

    def objective(trial) -> float:
        params = {name: _suggest(trial, name, s) for name, s in spec.space.items()}
        try:
            trial_cfg = apply_params(quiet, spec.model, params)
        except ValueError as exc:  # an invalid combination (e.g. heads vs d_model)
            invalid.append(Refused(trial.number, *_refusal(exc)))
            raise optuna.TrialPruned(f"invalid parameters: {exc}") from None
        trial_entry = next(m for m in trial_cfg.models if m.label == spec.model)
        started = time.perf_counter()
        with tracker.run(f"trial-{trial.number:03d}", nested=True,
                         tags={tag.STAGE: "tune", tag.MODEL_TYPE: family,
                               tag.PIPELINE: quiet.name}) as run_id:
            tracker.log_params({"trial": params, "model": trial_entry.model_dump(mode="json"),
                                "training": trial_cfg.training.model_dump(mode="json")})
            row = {"trial": trial.number, **params, "run_id": run_id}

            def ended(state: str, value: float, why: str = "") -> None:
                tracker.set_tags({tag.TRIAL_STATE: state})
                rows.append({**row, "state": state, "value": value, "why": why,
                             "seconds": round(time.perf_counter() - started, 2)})

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                tracker.log_metrics(logs, step=epoch)
                trial.report(logs.get("val_loss", logs.get("loss")), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {epoch + 1}")

            try:
                _, history, _ = fit_model(trial_entry, prep, training_settings(trial_cfg),
                                          on_epoch)
            except optuna.TrialPruned as exc:
                ended("pruned", math.nan, str(exc))
                raise
            except RunFailed as exc:  # NaN loss for these parameters: a failed trial
                ended("failed", math.nan, exc.message)
                raise optuna.TrialPruned(str(exc)) from None
            curve = history.get("val_loss") or history.get("loss") or [math.inf]
            value = float(min(curve))
            tracker.log_metrics({"objective_val_loss": value})
            ended("complete", value)
            return value

    return objective


def write_tuned_yaml(source_yaml: Path, best: PipelineConfig, model: str, out: Path,
                     origin: str | None = None) -> None:
    """The source YAML with the tuned model entry and training section replaced (paths kept
    as the user wrote them), written atomically next to it; its header names ``origin``
    (default: the source file's name)."""
    raw = yaml.safe_load(source_yaml.read_text(encoding="utf-8"))
    entry = next(m for m in best.models if m.label == model)
    # the options that differ from the family's defaults as validated (exclude_defaults
    # kept options a validator normalises, e.g. distribution_quantiles gaining 0.5)
    default = type(entry).model_validate({"type": entry.type}).model_dump(mode="json")
    tuned = {k: v for k, v in entry.model_dump(mode="json").items()
             if k == "type" or default.get(k) != v}
    raw["models"] = [tuned if (m.get("name") or m.get("type")) == model else m
                     for m in raw["models"]]
    raw["training"] = {**(raw.get("training") or {}),
                       **best.training.model_dump(mode="json", exclude_defaults=True)}
    raw.pop("tune", None)
    if best.data.path is not None and out.parent.resolve() != source_yaml.parent.resolve():
        # keep the data path valid
        raw["data"]["path"] = str(best.data.path)
    text = f"# tuned by `deepcast tune` from {origin or source_yaml.name}\n" + \
        yaml.safe_dump(raw, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _refusal(exc: Exception) -> tuple[str, bool]:
    """An option error's gist (``dropout 2.1: Input should be less than 1`` from pydantic's
    errors, else the first line), and whether it names one option (not a combination)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return (str(exc).splitlines()[0] if str(exc) else type(exc).__name__), False
    found = errors()[:2]
    text = "; ".join(f"{'.'.join(map(str, e['loc']))} {e.get('input')!r}: {e['msg']}"
                     if e["loc"] else e["msg"] for e in found)
    return text, bool(found) and all(e["loc"] for e in found)
