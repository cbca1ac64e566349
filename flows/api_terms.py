"""The Python API's errors in its own terms: the jobs it shares with the CLI word their
messages for the command line (``--output forecasts/x is a file``, ``fix: pass them with
--future PATH``); a notebook user passed ``output=`` and ``future=``, and has no flags.
:func:`speaks_python` rewrites a raised :class:`~deepcast.DeepcastError`'s message and hint
with the keyword arguments of the function that raised it (same exception, same type)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from deepcast.features.errors import DeepcastError

F = TypeVar("F", bound=Callable[..., Any])

#: whole phrases first (they read badly word by word), then single flags; ``{data}`` is the
#: function's data argument (``df``, or ``history`` for a forecast)
_PHRASES = (
    ("--data, or the Python API's frame", "{data}="),
    ("--future (Python API: future=)", "future="),
    ("--future PATH", "future=PATH"),
    ("--no-formula-guard", "ForecastOutput(formula_guard=False)"),
    ("--series", "ForecastReport(series=...)"),
)
_FLAGS = {"--data": "{data}=", "--output": "output=", "--report": "report=",
          "--future": "future=", "--as-of": "as_of=", "--n-windows": "n_windows=",
          "--step": "step=", "--refit": "refit=", "--trials": "trials=", "--model": "model="}
#: a flag and, when the next word is a path, a number or a date, its value (a trailing
#: colon or comma is the sentence's)
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)(?![\w-])"
                   r"(?: ([^\s,)]*[/.\d][^\s,)]*?)(?=[:,]?(?:\s|$|\))))?")


def in_python_terms(text: str, data: str) -> str:
    """``text`` with the CLI's flags written as keyword arguments: ``--output X`` ->
    ``output='X'``, ``--as-of 120`` -> ``as_of=120``, ``--future`` -> ``future=``."""
    for phrase, term in _PHRASES:
        text = text.replace(phrase, term.format(data=data))

    def keyword(m: re.Match) -> str:
        term = _FLAGS.get(m.group(1))
        if term is None:  # a flag the API has no argument for (e.g. promote's)
            return m.group(0)
        term, value = term.format(data=data), m.group(2)
        if value is None:
            return term
        return term + (value if value.isdigit() else repr(value))

    return _FLAG.sub(keyword, text)


def speaks_python(data: str = "df") -> Callable[[F], F]:
    """Decorate an API function: a DeepcastError it raises names keyword arguments, not
    flags (``data``: the name of its data argument)."""
    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except DeepcastError as exc:
                exc.message = in_python_terms(exc.message, data)
                exc.hint = None if exc.hint is None else in_python_terms(exc.hint, data)
                exc.args = (exc.message if exc.hint is None
                            else f"{exc.message}\n  fix: {exc.hint}",)
                raise
        return call  # type: ignore[return-value]
    return wrap


__all__ = ["in_python_terms", "speaks_python"]
