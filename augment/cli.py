"""``augment`` console script: one subcommand per pipeline stage.

``augment prepare|judge|train|synthesize|evaluate [--params params.yaml] [paths...]`` reads the stage's
section of the params file and runs it in this process (no Prefect); the flows in ``flows/`` call
the same stage functions. Errors a user can fix are printed without a traceback, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import json
import sys
import textwrap
import typing

from .config import STAGE_CONFIGS, describe_type, load_params
from .errors import AugmentError, OutputError
from .io import names_nothing

# subcommand -> (help, {option: (default, help)})
STAGES = {
    "prepare": ("load the data set, split train/val/test, apply the long-tail imbalance", {
        "out": ("data/prepared", "directory for the prepared splits"),
        "metrics": ("metrics/prepare.json", "class counts and split sizes (JSON)")}),
    "judge": ("fit the judge classifier on the real train split (FID features, sample filter)", {
        "data": ("data/prepared", "prepared data directory"),
        "out": ("models/judge.pt", "judge checkpoint"),
        "metrics": ("metrics/judge.json", "the judge's validation scores (JSON)")}),
    "train": ("train the conditional GAN on the prepared train split", {
        "data": ("data/prepared", "prepared data directory"),
        "judge": ("models/judge.pt", "judge checkpoint for FID/diversity at each checkpoint"),
        "quality": ("metrics/quality.json", "final FID, per-class FID, diversity (JSON)"),
        "settings": ("metrics/train_config.json", "every setting the run used, nulls resolved"),
        "resume_dir": (None, "checkpoints of the running job, resumed after an interruption "
                             "(default: train-resume beside --out)"),
        "out": ("models/gan.pt", "checkpoint path (written every train.checkpoint_every epochs)"),
        "samples": ("plots/train/samples.png", "per-class sample grid (PNG)"),
        "logdir": ("dvclive/train", "dvclive directory for the loss curves")}),
    "synthesize": ("draw class-balanced synthetic samples from the checkpoint", {
        "data": ("data/prepared", "prepared data directory (train split sets the counts)"),
        "model": ("models/gan.pt", "GAN checkpoint"),
        "judge": ("models/judge.pt", "judge checkpoint (used when filter_threshold > 0)"),
        "out": ("data/synthetic", "output directory: images/<class>/*.png, manifest.csv, .npy"),
        "metrics": ("metrics/synthesize.json", "per-class synthetic counts (JSON)")}),
    "evaluate": ("train the downstream classifier with and without synthetic samples", {
        "data": ("data/prepared", "prepared data directory"),
        "synthetic": ("data/synthetic", "synthetic data directory"),
        "metrics": ("metrics/evaluate.json", "test metrics per variant (JSON)"),
        "plots": ("plots/evaluate", "directory for the CI chart, recall, confusion, run tables"),
        "report": ("reports/evaluate.md", "markdown report: verdict, table, sample grid")}),
}


def _settings_help(section: str) -> str:
    """Every params key of a section: its default (what params.yaml ships, but for the demo's
    prepare.imbalance_ratio), type and meaning."""
    cls = STAGE_CONFIGS[section]
    hints = typing.get_type_hints(cls)
    head = (f"params.yaml keys under '{section}:' (plus the top-level 'seed'), with their "
            "defaults" + ("; null = chosen by the preset, device and data (--dry-run shows what; "
                          "docs/parameters.md has the table)"
                          if section == "train" else "") + ":")
    lines = textwrap.wrap(head, width=92)
    for f in dataclasses.fields(cls):
        default = json.dumps(list(f.default) if isinstance(f.default, tuple) else f.default)
        lines.append(f"  {f.name:<17} {default}   ({describe_type(hints[f.name])})")
        lines += textwrap.wrap(f.metadata["doc"], width=92, initial_indent=" " * 20,
                               subsequent_indent=" " * 20)
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name, (summary, options) in STAGES.items():
        p = sub.add_parser(name, help=summary, description=summary, epilog=_settings_help(name),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--params", default="params.yaml", help="parameters file (default: %(default)s)")
        for option, (default, text) in options.items():
            shown = "" if default is None else " (default: %(default)s)"
            p.add_argument(f"--{option.replace('_', '-')}", dest=option, default=default,
                           help=text + shown)
        if name == "train":
            p.add_argument("--resume", action="store_true",
                           help="continue from the checkpoint at --out if it exists")
            p.add_argument("--dry-run", action="store_true",
                           help="print the settings the run would use (nulls resolved by preset, "
                                "device and data) and stop")
    return parser


def stage_kwargs(args: argparse.Namespace) -> dict:
    """The keyword arguments of ``augment.stages.<stage>.run`` from parsed arguments (minus
    --params)."""
    return {k: v for k, v in vars(args).items() if k not in ("stage", "params")}


def run_stage(args: argparse.Namespace) -> None:
    """Run ``augment.stages.<stage>.run`` in this process with the parsed arguments."""
    stage = importlib.import_module(f"augment.stages.{args.stage}")
    stage.run(load_params(args.params), **stage_kwargs(args))


def check_paths(args: argparse.Namespace) -> None:
    """Before any work: a path option naming no file or folder ("", ".": an unset shell
    variable) is an error, not an output over the current folder."""
    for option in STAGES[args.stage][1]:
        value = getattr(args, option)
        if value is not None and names_nothing(value):
            raise OutputError(f"--{option.replace('_', '-')} {value!r} names no file or folder: "
                              "give the path of the file or folder itself, or leave the option "
                              "out for its default")


def main(argv: list[str] | None = None, *, runner=run_stage, prog: str = "augment") -> int:
    """Parse ``argv``, call ``runner(args)``; a user-fixable error → one line, exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        check_paths(args)
        runner(args)
    except AugmentError as err:
        print(f"{prog} {args.stage}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT
        resume = "; a rerun resumes from the last checkpoint" if args.stage == "train" else ""
        print(f"{prog} {args.stage}: interrupted; nothing half-written (outputs are renamed into "
              f"place only when complete){resume}", file=sys.stderr)
        return 130
    except OSError as err:
        if err.errno not in WRITE_ERRORS:
            raise
        where = f": {err.filename}" if err.filename else ""
        print(f"{prog} {args.stage}: error: {err.strerror or err}{where}; the stage wrote "
              "nothing there (outputs are renamed into place only when complete): free space, "
              "fix the permissions or point the output elsewhere", file=sys.stderr)
        return 2
    return 0


# A write that failed for a reason outside the program: one line instead of a traceback.
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                errno.EIO}


if __name__ == "__main__":
    sys.exit(main())
