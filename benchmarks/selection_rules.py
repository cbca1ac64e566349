"""Selection rules replayed on ``results/selection_*.json`` (see ``selection_study.py``).

    python benchmarks/selection_rules.py [--test]

Each rule sees what ``train`` sees (every candidate's per-window selection scores) and
names the model to serve; the table gives, per set, the span MASE of that pick divided by
the span MASE of today's rule (the lowest mean), and the geometric mean of the ratios.
Without ``--test`` only the validation files are read (where a rule is chosen). The
rules that average several candidates need the study's forecasts
(``results/selection_*.parquet``, 8 MB, not committed: rerun the study to get them).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ENSEMBLE = "auto"  # the greedy ensemble of models: auto

Rule = Callable[[dict[str, np.ndarray]], str]


def lowest_mean(c: dict[str, np.ndarray]) -> str:
    return min(c, key=lambda k: np.mean(c[k]))


def _paired_ties(c: dict[str, np.ndarray], z: float) -> list[str]:
    """Candidates whose mean paired difference to the best is within ``z`` standard errors
    of it (per-window differences: the windows are shared)."""
    best = lowest_mean(c)
    ties = []
    for k, v in c.items():
        if len(v) != len(c[best]):
            continue
        d = v - c[best]
        se = np.std(d, ddof=1) / math.sqrt(len(d)) if len(d) > 1 else 0.0
        if np.mean(d) <= z * se:
            ties.append(k)
    return ties


def prefer_ensemble(z: float) -> Rule:
    """deepcast's own rule (``evaluation.prefer_ensemble: z``), the shipped code called on
    the candidates' scores: the ensemble when tied with the lowest, else the lowest."""
    import sys

    sys.path.insert(0, str(RESULTS.parents[1]))
    from deepcast.pipelines.modelling import ModelResult
    from deepcast.pipelines.selection import choose

    def rule(c: dict[str, np.ndarray]) -> str:
        models = [ModelResult(name, "ensemble-greedy" if name == ENSEMBLE else name,
                              {"mase": float(v[-1])}, backtest_scores=tuple(v[:-1]),
                              window_scores=tuple(v[-1:])) for name, v in c.items()]
        return choose(models, "mase", z).model.name
    return rule


def ensemble_within(share: float) -> Rule:
    def rule(c: dict[str, np.ndarray]) -> str:
        best = lowest_mean(c)
        if ENSEMBLE in c and np.mean(c[ENSEMBLE]) <= (1 + share) * np.mean(c[best]):
            return ENSEMBLE
        return best
    return rule


def one_se_unpaired(c: dict[str, np.ndarray]) -> str:
    best = lowest_mean(c)
    v = c[best]
    se = np.std(v, ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0.0
    if ENSEMBLE in c and np.mean(c[ENSEMBLE]) <= np.mean(v) + se:
        return ENSEMBLE
    return best


def always_ensemble(c: dict[str, np.ndarray]) -> str:
    return ENSEMBLE if ENSEMBLE in c else lowest_mean(c)


def lowest_median(c: dict[str, np.ndarray]) -> str:
    return min(c, key=lambda k: np.median(c[k]))


def lowest_geomean(c: dict[str, np.ndarray]) -> str:
    return min(c, key=lambda k: np.mean(np.log(np.maximum(c[k], 1e-9))))


def top_mean(k: int) -> Rule:
    """The equal-weight mean of the ``k`` candidates with the lowest mean score."""
    def rule(c: dict[str, np.ndarray]) -> tuple[str, ...]:
        return tuple(sorted(c, key=lambda n: np.mean(c[n]))[:k])
    return rule


def top_mean_ties(z: float, k: int) -> Rule:
    """The mean of up to ``k`` candidates within ``z`` paired SE of the best (one: the
    best alone)."""
    def rule(c: dict[str, np.ndarray]) -> tuple[str, ...]:
        ties = sorted(_paired_ties(c, z), key=lambda n: np.mean(c[n]))
        return tuple(ties[:k])
    return rule


def tied_models(z: float, k: int) -> Rule:
    """The greedy ensemble when tied with the best, else the mean of up to ``k`` models
    (no ensemble among them) within ``z`` paired SE of the best."""
    def rule(c: dict[str, np.ndarray]) -> tuple[str, ...]:
        ties = sorted(_paired_ties(c, z), key=lambda n: np.mean(c[n]))
        if ENSEMBLE in ties:
            return (ENSEMBLE,)
        return tuple([n for n in ties if n != ENSEMBLE][:k])
    return rule


def tied_models_only(z: float, k: int) -> Rule:
    """The mean of up to ``k`` non-ensemble models within ``z`` paired SE of the best
    (the best itself when it is an ensemble)."""
    def rule(c: dict[str, np.ndarray]) -> tuple[str, ...]:
        if lowest_mean(c) == ENSEMBLE:
            return (ENSEMBLE,)
        ties = sorted(_paired_ties(c, z), key=lambda n: np.mean(c[n]))
        return tuple([n for n in ties if n != ENSEMBLE][:k])
    return rule


RULES: dict[str, Rule] = {
    "lowest mean (today)": lowest_mean,
    "always ensemble": always_ensemble,
    "ensemble within 1 paired SE": prefer_ensemble(1.0),
    "ensemble within 2 paired SE": prefer_ensemble(2.0),
    "ensemble within 1 SE (unpaired)": one_se_unpaired,
    "ensemble within 2 %": ensemble_within(0.02),
    "ensemble within 5 %": ensemble_within(0.05),
    "lowest median": lowest_median,
    "mean of top 2": top_mean(2),
    "mean of top 3": top_mean(3),
    "mean of top 4": top_mean(4),
    "mean of top 3 within 1 paired SE": top_mean_ties(1.0, 3),
    "mean of top 3 within 2 paired SE": top_mean_ties(2.0, 3),
    "lowest geometric mean": lowest_geomean,
    "ensemble if tied, else mean of tied models (3, 1 SE)": tied_models(1.0, 3),
    "best ensemble, else mean of tied models (3, 1 SE)": tied_models_only(1.0, 3),
    "best ensemble, else mean of tied models (3, 2 SE)": tied_models_only(2.0, 3),
}


_FRAMES: dict[tuple[str, bool], tuple] = {}


def combined(run: dict, names: tuple[str, ...]) -> float:
    """Span MASE of the equal-weight mean of ``names``' forecasts (the study's parquet)."""
    import sys

    import pandas as pd

    sys.path.insert(0, str(RESULTS.parents[1]))
    sys.path.insert(0, str(RESULTS.parent))
    from accuracy import load_frame, score_forecast

    from deepcast.pipelines.config import load_config

    key = (run["set"], run["validation"])
    if key not in _FRAMES:
        cfg = load_config(RESULTS.parent / f"{run['set'].replace('-', '_')}.yaml")
        clean = load_frame(cfg, run["validation"],
                           min_length=cfg.evaluation.test_size + 1)
        _FRAMES[key] = (cfg, clean)
    cfg, clean = _FRAMES[key]
    name = f"selection_{run['set']}{'_validation' if run['validation'] else ''}.parquet"
    if not (RESULTS / name).exists():  # forecasts are not committed (8 MB): rerun the study
        return float("nan")
    fc = pd.read_parquet(RESULTS / name)
    fc["yhat"] = fc[list(names)].mean(axis=1)
    return score_forecast(fc[["unique_id", "ds", "yhat"]], clean, cfg)["mase"]


def main(test: bool = False) -> int:
    files = sorted(glob.glob(str(RESULTS / "selection_*.json")))
    runs = [json.loads(Path(f).read_text()) for f in files]
    runs = [r for r in runs if r["validation"] != test]
    if not runs:
        print("no selection_*.json files; run selection_study.py first")
        return 1
    header = f"| rule | {' | '.join(r['set'] for r in runs)} | geo. mean |"
    print(header)
    print("|" + "---|" * (len(runs) + 2))
    for label, rule in RULES.items():
        cells, ratios = [], []
        for r in runs:
            cand = {c["name"]: np.asarray(c["selection"], float) for c in r["candidates"]
                    if c["selection"] and np.all(np.isfinite(c["selection"]))}
            span = {c["name"]: c["span_mase"] for c in r["candidates"]}
            pick, base = rule(cand), lowest_mean(cand)
            if isinstance(pick, tuple):
                value = combined(r, pick) if len(pick) > 1 else span[pick[0]]
                pick = "+".join(pick)
            else:
                value = span[pick]
            ratios.append(value / span[base])
            cells.append(f"{pick} {value:.3f}")
        ok = [x for x in ratios if np.isfinite(x)]
        gm = math.exp(np.mean(np.log(ok))) if len(ok) == len(ratios) else float("nan")
        print(f"| {label} | {' | '.join(cells)} | {gm:.4f} |")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", action="store_true", help="read the test-span files")
    raise SystemExit(main(ap.parse_args().test))
