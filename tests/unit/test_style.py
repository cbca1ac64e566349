"""The architecture targets hold: modules <= 400 lines, functions <= 60 lines, public
functions <= 7 parameters, no import cycle (``scripts/check_style.py``)."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def test_architecture_targets_hold():
    spec = importlib.util.spec_from_file_location("check_style",
                                                  ROOT / "scripts" / "check_style.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.problems() == []
