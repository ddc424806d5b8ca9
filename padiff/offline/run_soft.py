"""The pairs a recorded comparison adds at run time, as ``compare`` does: parameter-free layers between neighbours.

A map pairs the layers it can place; ``compare`` pairs more while the models run
(:mod:`padiff.runtime.pairing`): a parameter-free leaf (an activation, a rotary embedding, a
pooling) no map names is compared with the call of a parameter-free leaf of the same kind on
the other side between the same paired neighbours. ``suggest_layer_map`` leaves such layers out
of its proposal for that reason ("the engine pairs its calls"), so without this rule a recorded
comparison would compare fewer layers than the live one with the same map. The calls of each
run's first recorded step (in the order they began) are fed to the live engine's own pairer
(:class:`~padiff.runtime.pairing.OnlinePairer`); a layer is added as a pair when all its calls
paired with the same calls of one layer on the other side.

Layers holding parameters that no map names are paired by the live engine in call order; here
they are left out (a recorded skeleton cannot tell a special-init layer, compared as one unit
live, from a plain one), and the comparison's notes say which.
"""

from __future__ import annotations

from collections.abc import Mapping

from padiff.layer_map import LayerPair
from padiff.names import depth as path_depth
from padiff.names import is_strictly_within
from padiff.offline.reader import RankRun
from padiff.runtime.pairing import Event, OnlinePairer, Role

#: the evidence a pair added here carries (in the report's mapping)
EVIDENCE = "paired as compare pairs at run time: a parameter-free layer of the same kind between paired neighbours"


def _roles(run: RankRun, pair_of: Mapping[str, LayerPair], units: set[str]) -> dict[str, Role]:
    """The live roles (:func:`padiff.runtime.pairing.assign_roles`) from a recorded skeleton."""
    roles: dict[str, Role] = {}
    for lay in run.skeleton.get("layers", []):
        path, cls = lay["path"], str(lay.get("cls", ""))
        if path in roles or any(is_strictly_within(path, top) for top in units):
            continue
        pair = pair_of.get(path)
        if pair is not None:
            roles[path] = Role(path, cls, "explicit", path_depth(path), pair, unit=pair.opaque)
        elif lay.get("state"):
            roles[path] = Role(path, cls, "hard", path_depth(path), stateful=True)
        elif lay.get("leaf") and path != "":
            roles[path] = Role(path, cls, "soft", path_depth(path))
    return roles


def _events(run: RankRun, step: int, roles: Mapping[str, Role]) -> list[Event]:
    line = run.steps[step]
    calls = line.get("calls")
    if calls is None:  # a run recorded before calls were kept: first calls, in the order they returned
        calls = [[p, 0] for p in line.get("call_order", [])]
    out: list[Event] = []
    for path, call in calls:
        role = roles.get(path)
        if role is not None:
            out.append(Event(len(out), role, int(call)))
    return out


def soft_pairs(pd: RankRun, pt: RankRun, pairs: list[LayerPair]) -> tuple[list[LayerPair], list[str]]:
    """The parameter-free layer pairs ``compare`` would add to ``pairs`` on these runs, and notes."""
    common = sorted(set(pd.steps) & set(pt.steps))
    if not common:
        return [], []
    units = {p for pr in pairs if pr.opaque for p in pr.paddle_paths}
    t_units = {p for pr in pairs if pr.opaque for p in pr.torch_paths}
    p_roles = _roles(pd, {p: pr for pr in pairs for p in pr.paddle_paths}, units)
    t_roles = _roles(pt, {p: pr for pr in pairs for p in pr.torch_paths}, t_units)
    p_events, t_events = _events(pd, common[0], p_roles), _events(pt, common[0], t_roles)
    pairer = OnlinePairer(p_events)
    matched: dict[str, set[tuple[str, int, int]]] = {}
    for tev in t_events:
        pev = pairer.match(tev)
        if tev.role.kind == "soft":
            got = ("", -1, tev.call) if pev is None or pev.role.kind != "soft" else (pev.role.path, pev.call, tev.call)
            matched.setdefault(tev.role.path, set()).add(got)
    pairer.finish()
    out: list[LayerPair] = []
    taken: set[str] = set()
    for t_path, got in matched.items():
        p_paths = {p for p, _, _ in got}
        if len(p_paths) != 1 or "" in p_paths or any(pc != tc for _, pc, tc in got):
            continue
        p_path = next(iter(p_paths))
        if p_path in taken:
            continue
        taken.add(p_path)
        out.append(LayerPair(p_path, t_path, p_roles[p_path].cls, t_roles[t_path].cls, confidence=0.5,
                             evidence=(EVIDENCE,)))
    unmapped = sorted(r.path for r in t_roles.values() if r.kind == "hard")
    notes = ([f"{len(unmapped)} torch layer(s) holding parameters are in no pair and not compared (compare pairs "
              f"them in call order; name them in the map): {', '.join(unmapped[:6])}"
              + (" ..." if len(unmapped) > 6 else "")] if unmapped else [])
    return out, notes


__all__ = ["EVIDENCE", "soft_pairs"]
