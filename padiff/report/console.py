"""Printing reports and mappings to the terminal (the only place auto_diff prints)."""

from __future__ import annotations

import os
import sys
from typing import Any

from padiff.report.records import DiffReport


def print_report(rep: DiffReport, file: Any = None) -> None:
    """Print the text rendering of a report (long logs go to files; their path is printed)."""
    out = file or sys.stdout
    try:
        from padiff.report.text import render_report
    except ImportError:
        render_report = None
    if render_report is not None:
        print(render_report(rep), file=out)
        return
    first = rep.first_diff
    if first is None:
        print(f"padiff: SUCCESS — stages {', '.join(rep.stages)}; max forward diff {rep.max_diff():.3g}", file=out)
    else:
        print(f"padiff: FAILED at {first.stage} step {first.step}: paddle {first.paddle_path} "
              f"({first.paddle_class}) vs torch {first.torch_path} ({first.torch_class}); "
              f"max abs diff {first.max_abs_diff:.3g} {first.note}", file=out)


AUTO_MAP_DIR = "auto-map"  # under the log root: the last "auto" proposal, reviewed and saved


def print_mapping(lm: Any, layer: Any = None, module: Any = None, file: Any = None) -> str | None:
    """Print a short summary of the map a run is about to use (``layer_map="auto"``).

    The full review (every pair, the default-pairing comparison) is long, so it goes to
    ``<log root>/auto-map/review.txt`` with the map itself beside it (``map.yaml``, ready
    for ``--map`` or ``LayerMap.load``); both are overwritten by the next "auto" run, so
    they never pile up. Returns the review's path (``None`` when it could not be written).
    """
    from padiff.mapping_review import mapping_summary, needs_a_person, review_map
    from padiff.report.text import default_log_root

    out = file or sys.stdout
    review_path: str | None = None
    try:
        from padiff.report.files import atomic_write

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
        shown = ", ".join(f"{p.paddle_path or '<root>'} <-> {p.torch_path or '<root>'}" for p in doubtful[:3])
        print(f"  check first: {shown}" + (f" (+{len(doubtful) - 3} more)" if len(doubtful) > 3 else ""), file=out)
    if review_path:
        print(f"  full review: {review_path}" + (f"; map: {map_path} (edit it, pass it as layer_map / --map)"
                                                 if map_path else ""), file=out)
    else:
        print("  full review: print(padiff.suggest_layer_map(layer, module, example_inp).review())", file=out)
    return review_path
