"""A framework warning raised on every forward is shown once per padiff run, as in a plain loop."""

from __future__ import annotations

import warnings

from models.basic import conv_pair

import padiff
from padiff.runtime.warn_once import once_per_run

BN_TEXT = "we now always track global mean and variance"


def _shown(fn) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own default: once per location
        fn()
    return [str(w.message) for w in caught]


def test_paddle_batchnorm_train_warning_appears_once_under_padiff():
    layer, module, inp = conv_pair()
    layer.train()
    module.train()
    shown = _shown(lambda: padiff.compare(layer, module, inp, auto_weights=True, options={"atol": 1e-4, "rtol": 1e-3}))
    assert sum(BN_TEXT in m for m in shown) == 1, shown


def test_same_warning_after_a_filter_reset_is_not_shown_again_but_others_are():
    def noisy():
        with once_per_run():
            for i in range(3):
                warnings.warn("repeated", UserWarning, stacklevel=1)
                with warnings.catch_warnings():  # what the exporters' silencing does to the registry
                    warnings.simplefilter("ignore")
                warnings.warn(f"other {i}", UserWarning, stacklevel=1)

    shown = _shown(noisy)
    assert shown.count("repeated") == 1
    assert [m for m in shown if m.startswith("other")] == ["other 0", "other 1", "other 2"]
