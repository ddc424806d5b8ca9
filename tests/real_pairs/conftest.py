"""The enumerated pairs (pairs_enum.py, pairs_convert.py) build and prove dozens of models to know which to
register: that runs only when the real-pairs suite is selected (``-m real_pairs``), never in the default run."""

from __future__ import annotations

import os

import pytest

from .pairs_enum import ENV


def pytest_configure(config: pytest.Config) -> None:
    expr = (config.getoption("markexpr", default="") or "").replace(" ", "")
    if "real_pairs" in expr and "notreal_pairs" not in expr:
        os.environ.setdefault(ENV, "1")
