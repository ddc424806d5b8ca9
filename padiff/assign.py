"""``assign_weight``, the public weight copy: resolve the layer map (``"auto"`` included), plan, copy.

The planning and copying live in :mod:`padiff.weights`; this module only turns what the user
passed into a :class:`~padiff.layer_map.LayerMap` (running the aligner for ``"auto"``) and
prints the reason when the copy cannot be made.
"""

from __future__ import annotations

import copy
import logging
import sys
from typing import Any

from padiff.checks import check_models
from padiff.errors import InputError, WeightAssignError
from padiff.layer_map import LayerMap
from padiff.names import is_within, show
from padiff.weights.assign import copy_weights
from padiff.weights.assign_plan import plan_weights
from padiff.weights.special_init import find_special_pairs

log = logging.getLogger("padiff")


def with_special_pairs(lm: LayerMap, layer: Any, module: Any) -> LayerMap:
    """``lm`` plus the special-init pairs ``LayerMap.auto`` finds; pairs inside them are dropped.

    A structural proposal may pair the insides of an attention or recurrent layer piece
    by piece (or with the wrong neighbour); a registered special init knows the whole
    layer, so its pair wins. Returns a new map; ``lm`` is not changed.
    """
    # units the map already pairs (the proposal pairs them by dataflow) are not paired again by kind
    covered = {(side, path) for pr in lm.pairs for side in ("paddle", "torch") for path in pr.paths(side)}
    tops = [(side, path) for pr in lm.pairs if pr.opaque for side in ("paddle", "torch") for path in pr.paths(side)]

    def taken(side: str, path: str) -> bool:
        return (side, path) in covered or any(s == side and is_within(path, top) for s, top in tops)

    specials = [sp for sp in find_special_pairs(layer, module)
                if not taken("paddle", sp[2]) and not taken("torch", sp[3])]
    if not specials:
        return lm
    p_tops = [pp for _, _, pp, _ in specials]
    t_tops = [tp for _, _, _, tp in specials]
    out = copy.copy(lm)
    out.pairs = [pr for pr in lm.pairs if not any(is_within(pr.paddle_path, top) for top in p_tops)
                 and not any(is_within(pr.torch_path, top) for top in t_tops)]
    out.map = dict(lm.map)
    mapped = {id(k) for k in out.map} | {id(v) for v in out.map.values()}
    for p_obj, t_obj, _, _ in specials:
        if id(p_obj) not in mapped and id(t_obj) not in mapped:
            out.map[p_obj] = t_obj
    out.notes = [*lm.notes, "special-init pairs added: " + ", ".join(f"{show(p)}<->{show(t)}"
                                                                     for p, t in zip(p_tops, t_tops))]
    return out


def _layer_map(layer_map: Any, layer: Any, module: Any) -> LayerMap:
    if isinstance(layer_map, str):
        if layer_map != "auto":
            raise InputError(f"layer_map must be a LayerMap, a dict {{paddle_layer: torch_module}} or 'auto', "
                             f"got the string {layer_map!r}.")
        try:
            from padiff.graph.suggest import suggest_layer_map
        except ImportError:
            log.info("padiff.graph.suggest is not available; using LayerMap.auto (special-init pairs only).")
            return LayerMap().auto(layer, module)
        return with_special_pairs(suggest_layer_map(layer, module), layer, module)
    return LayerMap.coerce(layer_map)


def assign_weight(layer: Any, module: Any, layer_map: Any = None) -> bool:
    """Copy the torch ``module``'s weights into the paddle ``layer`` (see the README's "special init").

    ``layer_map`` may be None, a :class:`LayerMap`, a dict ``{paddle_layer: torch_module}``
    or ``"auto"``. Returns True when every paired tensor was copied; False when the models
    cannot be paired or copied, after printing why (paths, classes, shapes, both trees,
    hints) — the paddle model is then exactly as before. Raises :class:`InputError` for
    misuse (models swapped, not models) and :class:`MappingError` for a map that does not
    fit the models.
    """
    check_models(layer, module, call="assign_weight")
    lm = _layer_map(layer_map, layer, module)
    resolved = lm.resolve(layer, module)
    try:
        plans = plan_weights(layer, module, resolved)
        conversions = copy_weights(layer, module, plans)
    except WeightAssignError as e:
        log.debug("assign_weight failed:\n%s", e)
        print(str(e), file=sys.stderr)
        return False
    for line in conversions:
        log.debug("assign_weight: %s", line)
    return True
