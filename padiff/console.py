"""Printing reports and mappings to the terminal (the only place auto_diff prints)."""

from __future__ import annotations

import os
import sys
from typing import Any

from padiff.maps.review import mapping_summary, needs_a_person, review_map
from padiff.names import show
from padiff.report.files import atomic_write
from padiff.report.log_folders import default_log_root
from padiff.report.logs import render_report
from padiff.report.records import DiffReport


def print_report(rep: DiffReport, file: Any = None) -> None:
    """Print the text rendering of a report (long logs go to files; their path is printed)."""
    print(render_report(rep), file=file or sys.stdout)


AUTO_MAP_DIR = "auto-map"  # under the log root: the last "auto" proposal, reviewed and saved


def print_mapping(lm: Any, layer: Any = None, module: Any = None, file: Any = None) -> str | None:
    """Print a short summary of the map a run is about to use (``layer_map="auto"``).

    The full review (every pair, the default-pairing comparison) is long, so it goes to
    ``<log root>/auto-map/review.txt`` with the map itself beside it (``map.yaml``, ready
    for ``--map`` or ``LayerMap.load``); both are overwritten by the next "auto" run, so
    they never pile up. Returns the review's path (``None`` when it could not be written).
    """
    out = file or sys.stdout
    review_path: str | None = None
    try:
        folder = os.path.join(default_log_root(), AUTO_MAP_DIR)
        # plain text in the file, also when the run prints to a terminal
        review_path = atomic_write(os.path.join(folder, "review.txt"), review_map(lm, fancy=False))
        map_path = os.path.join(folder, "map.yaml")
        try:
            lm.save(map_path, layer, module)
        except Exception:  # noqa: BLE001 - the review is what matters; a map that cannot be saved is noted
            map_path = ""
    except OSError:
        map_path = ""
    print(f"padiff: {mapping_summary(lm)}.", file=out)
    doubtful = [p for p in lm.pairs if needs_a_person(p)]
    if doubtful:
        shown = ", ".join(f"{show(p.paddle_path)} <-> {show(p.torch_path)}" for p in doubtful[:3])
        print(f"  check first: {shown}" + (f" (+{len(doubtful) - 3} more)" if len(doubtful) > 3 else ""), file=out)
    if review_path:
        print(f"  full review: {review_path}" + (f"; map: {map_path} (edit it, pass it as layer_map / --map)"
                                                 if map_path else ""), file=out)
    else:
        print("  full review: print(padiff.suggest_layer_map(layer, module, example_inp).review())", file=out)
    return review_path
