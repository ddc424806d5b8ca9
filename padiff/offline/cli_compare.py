"""``padiff compare-runs RUN_PD RUN_PT``: the offline comparison from the shell (no framework imported)."""

from __future__ import annotations

import argparse
import os

from padiff.cli_target import UsageError, parse_options


def cmd_compare_runs(args: argparse.Namespace) -> int:
    """Compare two run folders; print the report; exit 0 agree, 1 difference (2 is raised as a usage error)."""
    for flag, path in (("--report", args.report), ("--json", args.json)):
        if path and os.path.isdir(path):
            raise UsageError(f"{flag} {path} is a directory; give a file name.")
    options = parse_options(args.options)
    from padiff.offline.compare_runs import compare_runs
    from padiff.report.logs import render_report

    beside = args.report or args.json
    save_map = os.path.splitext(beside)[0] + ".map.yaml" if args.map == "auto" and beside else None
    rep = compare_runs(args.run_pd, args.run_pt, layer_map=args.map, options=options,
                       conventions=not getattr(args, "no_conventions", False), save_map=save_map)
    print(render_report(rep, log_dir=args.log_dir, log_keep=args.log_keep))
    for w in rep.warnings:
        print(f"warning: {w}")
    if args.report:
        from padiff.report.html import write_html

        print(f"HTML report: {write_html(rep, args.report)}")
    if args.json:
        from padiff.report.json_report import write_json

        print(f"JSON report: {write_json(rep, args.json)}")
    if save_map:
        print(f"Proposed layer map: {save_map} (review it with `padiff review`, pass it back with --map)")
    if rep:
        return 0
    first = rep.first_diff
    if first is not None:
        print(f"First differing layer pair: paddle {first.paddle_path or '<root>'} ({first.paddle_class}) <-> "
              f"torch {first.torch_path or '<root>'} ({first.torch_class}) [{first.stage}, step {first.step}"
              f"{', ' + first.item if first.item else ''}]")
    return 1
