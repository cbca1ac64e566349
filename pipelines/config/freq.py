"""``data.freq``: a pandas offset alias, an integer step, or ``auto`` (inferred from the
data by the validate stage). Aliases that pandas 2.2 and 3 renamed (``H``, ``T``, ``M``,
``A`` ...) are mapped to their current names with one logged note; anything else unknown
is refused with a "did you mean" suggestion."""

from __future__ import annotations

import difflib
import logging
import re
import warnings

from deepcast.features.schema import AUTO

log = logging.getLogger("deepcast")

# old alias -> the pandas 3 alias of the same offset (pandas 2.2 renamed the period-end
# ones to *E and lower-cased the sub-daily units; pandas 3 removed the old names; pandas 1
# read aliases case-insensitively, so lower-case m / q / y / a meant M / Q / Y / A)
RENAMED = {
    "H": "h", "BH": "bh", "CBH": "cbh", "T": "min", "S": "s", "L": "ms",
    "U": "us", "N": "ns",
    "M": "ME", "m": "ME", "BM": "BME", "SM": "SME", "CBM": "CBME",
    "Q": "QE", "q": "QE", "BQ": "BQE",
    "A": "YE", "a": "YE", "Y": "YE", "y": "YE", "BA": "BYE", "BY": "BYE",
    "AS": "YS", "BAS": "BYS",
    "d": "D", "w": "W", "b": "B", "c": "C",  # deprecated in pandas 3
}
# period-end alias -> (period, the alias that stamps the period at its start)
PERIOD_END = {
    "ME": ("month", "MS"), "BME": ("business month", "BMS"), "SME": ("semi-month", "SMS"),
    "CBME": ("custom business month", "CBMS"), "QE": ("quarter", "QS"),
    "BQE": ("business quarter", "BQS"), "YE": ("year", "YS"), "BYE": ("business year", "BYS"),
}
CURRENT = ("s", "min", "h", "D", "B", "C", "W", "MS", "ME", "SMS", "SME", "BMS", "BME",
           "CBMS", "CBME", "QS", "QE", "BQS", "BQE", "YS", "YE", "BYS", "BYE", "ms", "us",
           "ns", "bh", "cbh")
_WORDS = {
    "second": "s", "sec": "s", "minute": "min", "minutely": "min", "hour": "h",
    "hourly": "h", "day": "D", "daily": "D", "businessday": "B", "week": "W", "weekly": "W",
    "fortnight": "2W", "fortnightly": "2W", "month": "MS", "monthly": "MS", "quarter": "QS",
    "quarterly": "QS", "year": "YS", "yearly": "YS", "annual": "YS", "annually": "YS",
}
_ALIAS = re.compile(r"^(?P<n>\d*)(?P<base>[A-Za-z]+)(?P<anchor>-[A-Za-z0-9]+)?$")
_EXAMPLES = "examples: '30min', 'h', 'D', 'W', 'MS', or 'auto' to infer it from the data"


def check_freq(value: str | int) -> str | int:
    """The validated ``data.freq``: a positive integer step, ``auto``, or a pandas 3 offset
    alias (an old alias mapped to its current name, with a note)."""
    if isinstance(value, bool):
        raise ValueError("freq must be a pandas offset alias or a positive integer")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"integer freq must be >= 1, got {value}")
        return value
    if value.strip().isdigit():
        return int(value)
    if value.strip().lower() == AUTO:
        return AUTO
    renamed = _renamed(value)
    if renamed is not None:
        log.warning(_note(value, renamed))
        return renamed
    if _parses(value):
        return value
    hint = suggest_freq(value)
    raise ValueError(f"'{value}' is not a pandas offset alias ({_EXAMPLES})"
                     + (f"; did you mean {hint}?" if hint else ""))


def _parses(alias: str) -> bool:
    import pandas as pd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pd.tseries.frequencies.to_offset(alias)
    except ValueError:
        return False
    return True


def _renamed(value: str) -> str | None:
    """The current alias for an old one (``2H`` -> ``2h``, ``A-DEC`` -> ``YE-DEC``)."""
    m = _ALIAS.match(value)
    if m is None or m["base"] not in RENAMED:
        return None
    new = f"{m['n']}{RENAMED[m['base']]}{m['anchor'] or ''}"
    return new if _parses(new) else None


def _note(old: str, new: str) -> str:
    m = _ALIAS.match(new)
    note = f"data.freq {old!r} is an old pandas alias; using {new!r}, its pandas 3 name"
    if m and m["base"] in PERIOD_END:
        period, start = PERIOD_END[m["base"]]
        note += f" ({period} end: ds on the last day of each {period}"
        note += f"; for ds on the first day use {m['n'] + start!r})" if not m["anchor"] else ")"
    return note


def suggest_freq(value: str) -> str | None:
    """A likely meant alias for an unknown ``value`` ("hourly" -> 'h', "30 minutes" ->
    '30min', "MSS" -> 'MS'), quoted for a message; None when nothing is close."""
    n, word = re.match(r"^\s*(\d*)\s*(.*?)\s*$", value).groups()
    key = re.sub(r"[^a-z]", "", word.lower())
    for cand in (key, key.removesuffix("s"), key.removesuffix("ly")):
        if cand in _WORDS:
            return _quoted(n, _WORDS[cand])
    close = difflib.get_close_matches(word, CURRENT, n=1, cutoff=0.6)
    if close:
        return _quoted(n, close[0])
    close = difflib.get_close_matches(key, list(_WORDS), n=1, cutoff=0.75)
    return _quoted(n, _WORDS[close[0]]) if close else None


def _quoted(n: str, alias: str) -> str:
    """``alias`` times ``n`` quoted ('2W' x 3 -> '6W'), with the period-end twin of a
    period-start alias ('MS' -> "'MS' (or 'ME' for ds at period end)")."""
    m = re.match(r"^(\d*)(.*)$", alias)
    count = int(n or 1) * int(m[1] or 1)
    prefix = str(count) if n or m[1] else ""
    text = f"'{prefix}{m[2]}'"
    end = next((e for e, (_, s) in PERIOD_END.items() if s == m[2]), None)
    return f"{text} (or '{prefix}{end}' for ds at period end)" if end else text
