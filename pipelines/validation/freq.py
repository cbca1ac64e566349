"""``data.freq: auto`` resolved from the data, once, by the validate stage.

The config every later stage reads is the copy returned here (``data.freq`` set to the
inferred step), so windows, calendar features, forecast dates and the logged config all
use the step validation checked the grid with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from deepcast.features.errors import DataError
from deepcast.features.frequency import AUTO, InferredFreq, infer_freq
from deepcast.features.schema import DS, ID
from deepcast.pipelines.config import PipelineConfig
from deepcast.pipelines.config.freq import check_freq
from deepcast.pipelines.validation.facts import format_ds


def resolve_freq(cfg: PipelineConfig, frame: pd.DataFrame
                 ) -> tuple[PipelineConfig, InferredFreq | None]:
    """(``cfg`` with ``data.freq`` inferred from ``frame`` when it is ``auto``, how it was
    inferred); ``cfg`` itself and None otherwise. :class:`DataError` when no series is
    regular enough to tell (irregular timestamps)."""
    if cfg.data.freq != AUTO:
        return cfg, None
    found = infer_freq(frame)
    if found is None:
        raise DataError(f"data.freq: auto could not infer a frequency from ds: {_sample(frame)}",
                        hint="set data.freq to the step of the data (e.g. 'h', 'D', 'W-SUN', "
                        "'MS', or an integer step); irregular timestamps need aggregating to "
                        "a regular grid first")
    freq = found.freq if isinstance(found.freq, int) else check_freq(found.freq)
    return cfg.with_freq(freq), InferredFreq(freq, found.seen, found.agree)


def freq_line(found: InferredFreq) -> str:
    """What the summary says about an inferred freq."""
    what = "the most common step" if isinstance(found.freq, int) else "pandas' alias"
    return (f"data.freq: auto -> `{found.freq}` ({what} of {found.agree} of the "
            f"{found.seen} series looked at)")


def _sample(frame: pd.DataFrame) -> str:
    """The first dates of the longest series, to show why nothing regular was found."""
    keyed = frame[frame[ID].notna() & frame[DS].notna()]
    if keyed.empty:
        return "no rows with both unique_id and ds"
    longest = keyed[ID].value_counts().idxmax()
    ds = np.unique(keyed.loc[keyed[ID] == longest, DS].to_numpy())[:5]
    shown = ", ".join(format_ds(pd.Timestamp(d) if isinstance(d, np.datetime64) else d)
                      for d in ds)
    few = " (fewer than 3 dates per series)" if len(ds) < 3 else " (irregular)"
    return f"series {longest} starts {shown}{few}"
