"""The ``padiff`` command: suggest a layer map, review it, diff two maps, run a comparison.

Exit codes: 0 aligned (or: nothing wrong), 1 a difference was found (``run``) or the maps
differ (``diff``), 2 usage error (bad arguments, missing file, FUNC not found, bad
options or map, a padiff error caused by how it was called), 3 internal padiff error.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from padiff.cli_target import UsageError, load_target, parse_options
from padiff.names import show
from padiff.report.progress import status

EXIT_OK, EXIT_DIFF, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

EXAMPLE_FUNC = """\
FUNC is a function in FILE.py that takes no arguments and returns
(layer, module, example_inp), e.g.:

    def make_pair():
        layer, module = PaddleNet(), TorchNet()
        x = np.random.rand(2, 8).astype("float32")
        return layer, module, ({"x": paddle.to_tensor(x)}, {"x": torch.tensor(x)})

For `run` it may also return a 4th item, a dict with loss_fn and/or optimizer
(pairs [paddle, torch]) as padiff.compare takes them."""

EPILOGS = {
    "suggest": f"""example:
  padiff suggest models.py:make_pair --out map.yaml
  $EDITOR map.yaml              # fix what the review flags, then commit it
  padiff run models.py:make_pair --map map.yaml --auto-weights

{EXAMPLE_FUNC}""",
    "review": """example:
  padiff review map.yaml

Prints the proposed pairs (paddle <-> torch, classes, shapes, confidence), where the
proposal differs from plain default pairing, the low-confidence pairs to check first,
the layers left unpaired with the reason, and the ignores. Needs no models.""",
    "diff": """example:
  padiff diff map_before.yaml map_after.yaml

Shows the pairs added, removed and re-paired, field changes and ignore changes.
Exit code 0 when the maps are the same, 1 when they differ.""",
    "run": f"""examples:
  padiff run models.py:make_pair --auto-weights
  padiff run models.py:make_pair --map map.yaml --options atol=1e-5,rtol=1e-5,compare_mode=strict
  padiff run models.py:make_pair --map auto --report out.html --json out.json
  padiff run models.py:make_training_pair --auto-weights --steps 3
      (--steps > 1 checks training: FUNC returns a 4th item {{"optimizer": [paddle_opt, torch_opt]}})

--options takes the keys of padiff.compare's options dict: atol, rtol, diff_phase
(both|forward|backward), compare_mode (mean|strict), single_step (true|false).
Exit code 0 when everything agrees, 1 when a difference was found (the first
differing layer pair is printed), 2 for usage errors.

{EXAMPLE_FUNC}""",
    "compare-runs": """examples:
  padiff compare-runs runs/pd runs/pt
  padiff compare-runs runs/pd runs/pt --map auto --options atol=1e-5,rtol=1e-4 --report r.html --json r.json

RUN_PD / RUN_PT are out_dirs written by padiff.Recorder (paddle first). Needs neither
framework. --map takes a map file or 'auto' (module trees recorded in the runs); without
it layers are paired in call order. Exit code 0 when everything agrees, 1 when a
difference was found, 2 for usage errors (missing or damaged run folders included).""",
}


class _Parser(argparse.ArgumentParser):
    """argparse with errors that end in "Try 'padiff <cmd> --help'" and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help' for more information.\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``padiff`` argument parser with its four subcommands."""
    from padiff import __version__

    parser = _Parser(prog="padiff", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Compare a PaddlePaddle model with its PyTorch port, layer by layer.",
                     epilog="workflow:\n  padiff suggest models.py:make_pair --out map.yaml   # propose a layer map\n"
                            "  padiff review map.yaml                               # read it, edit it, commit it\n"
                            "  padiff run models.py:make_pair --map map.yaml --auto-weights --report out.html\n\n"
                            "Run 'padiff <command> --help' for each command's options and an example.")
    parser.add_argument("--version", action="version", version=f"padiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{suggest,review,diff,run,compare-runs}",
                                parser_class=_Parser)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=EPILOGS[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = add("suggest", "Propose a layer map for two models, write it to a file and print the review.")
    p.add_argument("target", metavar="FILE.py:FUNC", help="function returning (layer, module, example_inp)")
    p.add_argument("--out", metavar="MAP", help="write the map here (.yaml, .yml or .json)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--no-input", action="store_true",
                   help="match the module trees only (no ONNX export); example_inp is not used")

    p = add("review", "Print the review of a saved layer map (no models needed).")
    p.add_argument("map", metavar="MAP", help="a map file written by suggest or LayerMap.save")

    p = add("diff", "Show what changed between two layer maps.")
    p.add_argument("a", metavar="A", help="the old map")
    p.add_argument("b", metavar="B", help="the new map")

    p = add("run", "Run both models side by side and report the first layer where they differ.")
    p.add_argument("target", metavar="FILE.py:FUNC", help="function returning (layer, module, example_inp)")
    p.add_argument("--map", metavar="MAP|auto", help="a layer-map file, or 'auto' to propose one now")
    p.add_argument("--options", metavar="K=V,...", help="comparison options, e.g. atol=1e-4,rtol=0")
    p.add_argument("--steps", type=_positive_int, default=1, metavar="N", help="training steps to check (default 1)")
    p.add_argument("--auto-weights", action="store_true", help="copy the torch weights into paddle first")
    p.add_argument("--report", metavar="OUT.html", help="write the self-contained HTML report here")
    p.add_argument("--json", metavar="OUT.json", help="write the JSON dump of the report here")
    p.add_argument("--log-dir", metavar="DIR",
                   help="parent directory of the long logs (default $PADIFF_LOG_DIR or ./padiff_logs)")
    p.add_argument("--log-keep", type=_positive_int, metavar="N",
                   help="keep only the logs of the last N failed runs there (default $PADIFF_LOG_KEEP, else all)")

    p = add("compare-runs", "Compare two runs recorded by padiff.Recorder (paddle first), no framework needed.")
    p.add_argument("run_pd", metavar="RUN_PD", help="the paddle run folder")
    p.add_argument("run_pt", metavar="RUN_PT", help="the torch run folder")
    p.add_argument("--map", metavar="MAP|auto",
                   help="a layer-map file, or 'auto' to match the recorded graphs (else module trees); with "
                        "'auto' the proposal is written beside --report/--json as NAME.map.yaml for review")
    p.add_argument("--no-conventions", action="store_true",
                   help="compare raw values: do not reconcile framework conventions (BatchNorm running variance)")
    p.add_argument("--options", metavar="K=V,...", help="comparison options, e.g. atol=1e-4,rtol=0")
    p.add_argument("--report", metavar="OUT.html", help="write the self-contained HTML report here")
    p.add_argument("--json", metavar="OUT.json", help="write the JSON dump of the report here")
    p.add_argument("--log-dir", metavar="DIR", help="parent directory of the long logs")
    p.add_argument("--log-keep", type=_positive_int, metavar="N", help="keep only the logs of the last N failed runs")
    return parser


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``padiff`` console script; returns the exit code."""
    # paddle warns on import that no C++ extension compiler cache exists: noise for this command
    warnings.filterwarnings("ignore", message="No ccache found")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from padiff.errors import PadiffError
    from padiff.offline.cli_compare import cmd_compare_runs

    command = {"suggest": cmd_suggest, "review": cmd_review, "diff": cmd_diff, "run": cmd_run,
               "compare-runs": cmd_compare_runs}[args.command]
    if getattr(args, "target", None):
        # importing the user's file and building the models takes seconds (paddle, torch): say so at once
        print(f"padiff: loading {args.target} ...", file=sys.stderr, flush=True)
    try:
        return command(args)
    except (UsageError, PadiffError) as exc:
        kind = "" if isinstance(exc, UsageError) else f"{type(exc).__name__}: "
        print(f"padiff {args.command}: error: {kind}{exc}", file=sys.stderr)
        print(f"Try 'padiff {args.command} --help' for more information.", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("padiff: interrupted", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001 - a padiff bug: say so, with the traceback, and a distinct code
        traceback.print_exc()
        print("padiff: internal error (this is a bug in padiff; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL


def cmd_suggest(args: argparse.Namespace) -> int:
    """``padiff suggest FILE.py:FUNC --out map.yaml``."""
    from padiff.maps.text_io import format_of

    if args.out:
        format_of(args.out)  # check the extension before the (slow) export
        if os.path.isdir(args.out):
            raise UsageError(f"--out {args.out} is a directory; give a file name such as {args.out}/map.yaml.")
        if os.path.exists(args.out) and not args.force:
            raise UsageError(f"{args.out} exists; pass --force to overwrite it, or choose another --out "
                             "(then compare the two with 'padiff diff').")
    target = load_target(args.target)
    from padiff.graph.suggest import suggest_layer_map

    route = "module trees" if args.no_input else "ONNX export and graph matching"
    with status(f"proposing a layer map ({route})..."):
        lm = suggest_layer_map(target.layer, target.module, None if args.no_input else target.example_inp)
    print(lm.review())  # first: a path that cannot be written must not cost the proposal
    if args.out:
        lm.save(args.out, target.layer, target.module)
    if args.out:
        print(f"Wrote {args.out}. Review and edit it, then: padiff run {args.target} --map {args.out}")
    return EXIT_OK


def cmd_review(args: argparse.Namespace) -> int:
    """``padiff review map.yaml``."""
    from padiff.layer_map import load_map

    print(load_map(args.map).review(), end="")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """``padiff diff a.yaml b.yaml``."""
    from padiff.layer_map import load_map
    from padiff.maps.diff import diff_maps, render_diff

    changes = diff_maps(load_map(args.a), load_map(args.b))
    print(render_diff(changes), end="")
    return EXIT_DIFF if changes else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``padiff run FILE.py:FUNC [--map ...] [--options ...] ...``."""
    options = parse_options(args.options)
    for flag, path in (("--report", args.report), ("--json", args.json)):
        if path and os.path.isdir(path):
            raise UsageError(f"{flag} {path} is a directory; give a file name.")
    target = load_target(args.target)
    layer_map: Any = None
    if args.map == "auto":
        layer_map = "auto"
    elif args.map:
        from padiff.layer_map import load_map

        layer_map = load_map(args.map, target.layer, target.module)
    import padiff

    with status("running both models..."):
        rep = padiff.compare(target.layer, target.module, target.example_inp, auto_weights=args.auto_weights,
                             steps=args.steps, options=options, layer_map=layer_map, **target.extra)
    from padiff.report.logs import render_report

    print(render_report(rep, log_dir=args.log_dir, log_keep=args.log_keep))
    if args.report:
        from padiff.report.html import write_html

        print(f"HTML report: {write_html(rep, args.report)}")
    if args.json:
        from padiff.report.json_report import write_json

        print(f"JSON report: {write_json(rep, args.json)}")
    first = rep.first_diff
    if rep:
        return EXIT_OK
    if first is not None:
        print(f"First differing layer pair: paddle {show(first.paddle_path)} ({first.paddle_class}) <-> "
              f"torch {show(first.torch_path)} ({first.torch_class}) [{first.stage}, step {first.step}]")
    return EXIT_DIFF


if __name__ == "__main__":
    sys.exit(main())
