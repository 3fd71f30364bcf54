"""``monai-attn`` command line (also ``python -m monai_attn``).

Subcommands::

    monai-attn prepare {isic2018,dsb2018,brats2018,isles2018} --root RAW --out datalist.json
                       [--seed 0] [--folds 5] [--skip-bad] [--workers N] [--absolute-paths]
    monai-attn verify  {isic2018,...} --root RAW [--workers N] [--json report.json]
    monai-attn synth   {isic2018,...} --out DIR --cases N [--seed 0] [--shape ...] [--lgg N]
    monai-attn report  RUN_DIR [--screenshot report.png]
    monai-attn options BUNDLE_DIR [train|evaluate|inference|multi_gpu_train]
    monai-attn reproduce {isic2018,...} --root RAW [--networks fpa,unet] [--seeds 3] [--epochs E]
                       [--out DIR] [--device cuda] [--gpus N] [--dry-run]

Each subcommand is a pair of functions: ``add_<name>(subparsers)`` declares its arguments and
sets ``func`` to ``run_<name>(args) -> int``. To add one, write the pair and append the
``add_`` function to :data:`SUBCOMMANDS`.

Exit codes: 0 success, 1 the data failed the integrity check, 2 usage error (bad arguments,
missing root), 3 (``reproduce``) some cells failed while the others finished.

A foreseeable mistake (a missing or unreadable file or folder, a bad value) ends with one line,
``error: <file or key>: <problem>; <what to do>``; ``--debug`` (or ``MONAI_ATTN_DEBUG=1``) shows the
full traceback instead.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from .errors import EXIT_DATA, EXIT_OK, EXIT_USAGE, debug_requested, error_line, find_user_error

__all__ = ["main", "build_parser", "SUBCOMMANDS", "DATASETS"]

logger = logging.getLogger("monai_attn.cli")

DATASETS = ("isic2018", "dsb2018", "brats2018", "isles2018")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=DATASETS, help="dataset name")
    p.add_argument("--root", required=True, help="raw dataset folder, as downloaded")
    p.add_argument("--workers", type=int, default=0, help="processes for the content checks (default: 0, in-process)")
    p.add_argument("--lgg", action="store_true", help="brats2018: include the LGG cases (PATM uses HGG only)")


def _adapter(args):
    from .data import get_adapter

    kwargs = {"grades": ("HGG", "LGG")} if args.dataset == "brats2018" and args.lgg else {}
    return get_adapter(args.dataset, args.root, **kwargs)


# ------------------------------------------------------------------------------------- verify
def add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check a raw dataset and list every problem",
                       description="Check that every expected file is present and readable, that the modalities "
                                   "of a case share shape/spacing/origin/direction, that labels take only the "
                                   "expected values and that intensities are finite. Exits 1 on any error.")
    _add_common(p)
    p.add_argument("--json", help="also write the report as JSON to this file")
    p.set_defaults(func=run_verify)


def run_verify(args) -> int:
    from .data import write_json_atomic

    report, _ = _adapter(args).verify(workers=args.workers)
    _out(report.format())
    if args.json:
        write_json_atomic(report.to_dict(), args.json)
    _out("OK" if report.ok else f"FAILED: {len(report.errors)} errors in {len(report.bad_cases)} cases")
    return EXIT_OK if report.ok else EXIT_DATA


# ------------------------------------------------------------------------------------ prepare
def add_prepare(sub) -> None:
    p = sub.add_parser("prepare", help="verify a raw dataset and write its datalist JSON",
                       description="Run the integrity check and write a MONAI decathlon-style datalist with the "
                                   "papers' seeded split. Nothing is written when the check fails, unless "
                                   "--skip-bad is given (the bad cases are then left out and listed).")
    _add_common(p)
    p.add_argument("--out", required=True, help="datalist JSON to write")
    p.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument("--folds", type=int, default=None, help="brats2018: number of case-wise folds (default 5)")
    p.add_argument("--skip-bad", action="store_true", help="leave out the cases that fail the check")
    p.add_argument("--absolute-paths", action="store_true", help="write absolute paths (default: relative to root)")
    p.set_defaults(func=run_prepare)


def run_prepare(args) -> int:
    if args.folds is not None and args.dataset != "brats2018":
        raise ValueError(f"--folds applies to brats2018 only, not {args.dataset}")
    if args.folds is not None and args.folds < 2:
        raise ValueError(f"--folds: cross-validation needs at least 2 folds, got {args.folds}; e.g. --folds 5")
    adapter = _adapter(args)
    data, report, skipped = adapter.prepare(args.out, seed=args.seed, folds=args.folds, skip_bad=args.skip_bad,
                                            workers=args.workers, absolute_paths=args.absolute_paths)
    _out(report.format())
    if data is None:
        _out(f"FAILED: nothing written to {args.out} (fix the problems above, or pass --skip-bad to leave out "
             f"the {len(report.bad_cases)} bad cases)")
        return EXIT_DATA
    if skipped:
        _out(f"skipped {len(skipped)} bad cases: {', '.join(skipped)}")
    sizes = ", ".join(f"{k} {len(data.get(k, []))}" for k in ("training", "validation", "test"))
    folds = f", {data['numFolds']} folds" if "numFolds" in data else ""
    _out(f"wrote {args.out}: {sizes}{folds}")
    return EXIT_OK


# -------------------------------------------------------------------------------------- synth
def add_synth(sub) -> None:
    p = sub.add_parser("synth", help="write a synthetic cohort in the dataset's real layout")
    p.add_argument("dataset", choices=DATASETS, help="dataset name")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--cases", type=int, required=True, help="number of cases (brats2018: HGG cases)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--shape", type=int, nargs="+", default=None,
                   help="brats2018: X Y Z (default 240 240 155); isles2018: X Y [Z] (default 256 256, 2-22 "
                        "slices); isic2018/dsb2018: H W (default: varied sizes)")
    p.add_argument("--lgg", type=int, default=None, help="brats2018: LGG cases to add (default cases // 4, min 1)")
    p.set_defaults(func=run_synth)


def run_synth(args) -> int:
    from .data import synthesize

    kwargs = {"lgg_cases": args.lgg} if args.dataset == "brats2018" else {}
    if args.lgg is not None and args.dataset != "brats2018":
        raise ValueError("--lgg applies to brats2018 only")
    root = synthesize(args.dataset, args.out, args.cases, seed=args.seed, shape=args.shape, **kwargs)
    _out(f"wrote {args.cases} synthetic {args.dataset} cases: {root}")
    return EXIT_OK


def add_report(sub) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.md (metrics, curves, overlays) for a bundle run")
    p.add_argument("run_dir", help="the --bundle_root of a bundle run (with eval/ from train.json and evaluate.json)")
    p.add_argument("--screenshot", default=None, metavar="PNG",
                   help="also render the report's tables, curves and overlays into one PNG")
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    from .reporting import write_run_report

    _out(f"report: {write_run_report(args.run_dir, screenshot=args.screenshot)}")
    return EXIT_OK


# ---------------------------------------------------------------------------------- reproduce
def add_reproduce(sub) -> None:
    p = sub.add_parser(
        "reproduce", help="train and evaluate the papers' networks over seeds/folds; write the paper's table",
        description="Check the raw dataset and write its datalist once, then train and evaluate every "
                    "(network, seed, fold) cell through the dataset's bundle (real `python -m monai.bundle run` "
                    "subprocesses; torchrun with --gpus N > 1) and write OUT/table.md and OUT/table.csv in the "
                    "paper's layout. Rerunning continues: finished cells are skipped, killed trainings resume. "
                    "Exit codes: 0 every cell finished, 1 the data failed the integrity check, 2 usage error, "
                    "3 some cells failed (the others still ran; see OUT/failures.json), 130 interrupted. "
                    "See docs/reproducing.md.")
    p.add_argument("dataset", choices=DATASETS, help="dataset name (picks the paper and the bundle)")
    p.add_argument("--root", required=True, help="raw dataset folder, as downloaded (or a `monai-attn synth` cohort)")
    p.add_argument("--networks", default=None,
                   help="comma-separated network names (PATM: unet,wunet,aunet,cscunet,cbamunet,gcnunet,fpa,rfna, "
                        "the default, or d6unet,d9unet; FocusNet++: focusnetpp, the default, or a PATM name as a "
                        "baseline)")
    p.add_argument("--seeds", type=int, default=3, help="training seeds 0..N-1 per network and fold (default 3)")
    p.add_argument("--folds", default=None, help="brats2018: 'all' (default, 5 folds) or comma-separated folds, e.g. 0,1")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the bundle's, i.e. the paper's)")
    p.add_argument("--out", default=None, help="output folder (default reproduce_<dataset>)")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the bundle's, cuda:0 if available)")
    p.add_argument("--gpus", type=int, default=1,
                   help="GPUs per training; N > 1 trains through torchrun with multi_gpu_train.json (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="cells run at the same time (default 1)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="bundle config override for every cell, repeatable, e.g. --override roi_size=[96,96]")
    p.add_argument("--checkpoint", choices=("best", "last"), default=None,
                   help="checkpoint to evaluate: best on validation, or the last epoch's (default: last for "
                        "brats2018, whose validation split is the held-out fold; best otherwise)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the paper's data split (default 0)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--synthetic", action="store_true", help="treat the data as synthetic (no paper columns)")
    kind.add_argument("--real", action="store_true", help="treat the data as the real dataset (paper columns)")
    p.add_argument("--skip-bad", action="store_true", help="leave out cases that fail the integrity check")
    p.add_argument("--workers", type=int, default=0, help="processes for the integrity check (default 0)")
    p.add_argument("--timeout", type=float, default=None, help="seconds allowed per bundle command (default none)")
    p.add_argument("--dry-run", action="store_true", help="print the commands that would run; run nothing")
    p.set_defaults(func=run_reproduce)


def run_reproduce(args) -> int:
    from .reproduce import run_from_args

    return run_from_args(args)


# ------------------------------------------------------------------------------------- options
def add_options(sub) -> None:
    p = sub.add_parser("options", help="list a bundle config's options: every key, its default and its meaning",
                       description="List every top-level key of a bundle's config with its default and a one-line "
                                   "meaning; each can be overridden on the bundle's command line as --<key> <value>.")
    p.add_argument("bundle", metavar="BUNDLE_DIR",
                   help="a bundle folder (e.g. bundles/mistakes_brats2018), its configs/ folder, or a bundle's name")
    p.add_argument("config", nargs="?", default=None,
                   help="train, evaluate (train.json + evaluate.json), inference or multi_gpu_train (default: train, "
                        "what evaluate adds to it, and inference)")
    p.set_defaults(func=run_options)


def run_options(args) -> int:
    from .options import describe

    _out(describe(args.bundle, [args.config] if args.config else None))
    return EXIT_OK


#: subcommand declarations, in help order; each adds a parser whose ``func`` runs it
SUBCOMMANDS: list[Callable] = [add_prepare, add_verify, add_synth, add_report, add_reproduce, add_options]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="monai-attn", description="monai_attn data and experiment tools")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (default: one line, 'error: <file or key>: ...'; "
                             "the environment variable MONAI_ATTN_DEBUG=1 does the same)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in SUBCOMMANDS:
        add(sub)
    for command in sub.choices.values():  # also accepted after the subcommand
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``monai-attn``; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help / bad usage
        return int(e.code or 0)
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose > 1 else logging.INFO
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("monai_attn").setLevel(level)
    try:
        return int(args.func(args) or EXIT_OK)
    except Exception as e:
        user = None if args.debug or debug_requested() else (
            find_user_error(e) or (e if isinstance(e, (ValueError, FileNotFoundError)) else None))
        if user is None:
            raise
        for line in str(user).strip().splitlines()[1:]:  # the details of a message of several lines
            sys.stderr.write(line + "\n")
        sys.stderr.write(error_line(user) + "\n")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
