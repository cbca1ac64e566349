"""The Python API's errors in its own terms: the jobs it shares with the CLI word their
messages for the command line (``--output forecasts/x is a file``, ``fix: pass them with
--future PATH``); a notebook user passed ``output=`` and ``future=``, and has no flags.
:func:`speaks_python` rewrites a raised :class:`~deepcast.DeepcastError`'s message and hint
with the keyword arguments of the function that raised it (same exception, same type)."""

from __future__ import annotations

import functools
import inspect
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from deepcast.features.errors import DeepcastError

F = TypeVar("F", bound=Callable[..., Any])

#: whole phrases first (they read badly word by word), then single flags; ``{data}`` is the
#: function's data argument (``df``, or ``history`` for a forecast)
_PHRASES = (
    ("--data, or the Python API's frame", "{data}="),
    ("--future PATH", "future=PATH"),
    ("--no-formula-guard", "ForecastOutput(formula_guard=False)"),
    ("--series", "ForecastReport(series=...)"),
)
#: flag -> keyword argument
_ARGS = {"--data": "{data}", "--output": "output", "--report": "report", "--future": "future",
         "--as-of": "as_of", "--n-windows": "n_windows", "--step": "step",
         "--refit": "refit", "--trials": "trials", "--model": "model"}
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)(?![\w-])")
_EXAMPLE = re.compile(r"e\.g\. (--[a-z][a-z-]*) ([^\s,;)]+)")  # a hint's example value


def in_python_terms(text: str, data: str, values: Mapping[str, str] | None = None) -> str:
    """``text`` with the CLI's flags written as keyword arguments: ``--output X`` (X the
    call's own ``values[flag]``) -> ``output='X'``, ``e.g. --as-of 120`` -> ``e.g.
    as_of=120``, any other ``--future`` -> ``future=``; flags the API has no argument
    for (``--rollback``) stay."""
    for phrase, term in _PHRASES:
        text = text.replace(phrase, term.format(data=data))
    for flag, value in (values or {}).items():
        text = text.replace(f"{flag} {value}", _keyword(flag, data, value))
    text = _EXAMPLE.sub(lambda m: "e.g. " + _keyword(m.group(1), data, m.group(2))
                        if m.group(1) in _ARGS else m.group(0), text)
    return _FLAG.sub(lambda m: _keyword(m.group(1), data) if m.group(1) in _ARGS
                     else m.group(0), text)


def _keyword(flag: str, data: str, value: str | None = None) -> str:
    name = _ARGS[flag].format(data=data)
    if value is None:
        return f"{name}="
    return f"{name}={value if value.isdigit() else repr(value)}"


def speaks_python(data: str = "df") -> Callable[[F], F]:
    """Decorate an API function: a DeepcastError it raises names keyword arguments, not
    flags (``data``: the name of its data argument)."""
    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except DeepcastError as exc:
                values = _values(signature, args, kwargs, data)
                exc.message = in_python_terms(exc.message, data, values)
                exc.hint = None if exc.hint is None else in_python_terms(exc.hint, data,
                                                                         values)
                exc.args = (exc.message if exc.hint is None
                            else f"{exc.message}\n  fix: {exc.hint}",)
                raise
        return call  # type: ignore[return-value]
    return wrap


def _values(signature: inspect.Signature, args: tuple, kwargs: dict, data: str
            ) -> dict[str, str]:
    """flag -> the text the CLI's message would show for this call's argument (paths,
    numbers; frames and unset arguments have none)."""
    try:
        bound = signature.bind(*args, **kwargs).arguments
    except TypeError:
        return {}
    out = {}
    for flag, name in _ARGS.items():
        value = bound.get(name.format(data=data))
        value = getattr(value, "path", getattr(value, "html", value))  # the option objects
        if isinstance(value, str | os.PathLike | int) and not isinstance(value, bool):
            out[flag] = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return out


__all__ = ["in_python_terms", "speaks_python"]
