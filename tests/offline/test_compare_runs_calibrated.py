"""compare_runs says it cannot give calibrated verdicts (recorded runs hold no float64 reference) instead of
silently judging element by element."""

from __future__ import annotations

import pytest

import padiff
from padiff.errors import OptionsError


def test_calibrated_is_refused_with_what_to_do_instead(tmp_path):
    with pytest.raises(OptionsError, match="compare_runs cannot use compare_mode='calibrated' yet"):
        padiff.compare_runs(tmp_path / "p", tmp_path / "t", options={"compare_mode": "calibrated"})
