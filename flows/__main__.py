"""``python -m flows <command>``.

- ``python -m flows <stage> [options]``: run one stage's Prefect flow (what dvc.yaml calls).
  Options are those of ``augment <stage>``; params are validated before Prefect starts, and
  user-fixable errors end with one line on stderr and exit status 2.
- ``python -m flows repro [dvc repro args]``: ``dvc repro`` with one Prefect server shared by
  every stage process (started on loopback unless ``PREFECT_API_URL`` is set) and a warm stage
  launcher (:mod:`flows.launcher`) that forks each stage from a process with everything imported.
- ``python -m flows serve [--name N] [--cron C] [--set k=v ...]``: serve the scheduled
  ``retrain`` deployment (needs a running Prefect server: ``PREFECT_API_URL``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

# Nothing heavy at module level: under `python -m flows repro` a stage command only hands its
# arguments to the warm launcher (flows.launcher) and must not pay for torch or Prefect first.


def _flows() -> dict:
    from flows.evaluate import evaluate_flow
    from flows.stages import judge_flow, prepare_flow, synthesize_flow, train_flow

    return {"prepare": prepare_flow, "judge": judge_flow, "train": train_flow, "synthesize": synthesize_flow,
            "evaluate": evaluate_flow}


def run_flow(args) -> None:
    """Validate the stage's params (fails before Prefect's start-up cost), then run its flow."""
    from augment.cli import stage_kwargs
    from augment.config import load_params, stage_config

    stage_config(load_params(args.params), args.stage)
    _flows()[args.stage](params_path=args.params, **stage_kwargs(args))


def run_cli(argv: list[str]) -> int:
    """``python -m flows <argv>`` in this process."""
    extra = {"repro": repro, "serve": serve}
    if argv and argv[0] in extra:
        return extra[argv[0]](argv[1:])
    from augment.cli import main as cli_main

    return cli_main(argv, runner=run_flow, prog="python -m flows")


def repro(argv: list[str]) -> int:
    """``dvc repro <argv>`` under one shared Prefect server."""
    from flows.launcher import stage_launcher
    from flows.server import shared_server

    with shared_server(), stage_launcher():
        dvc = Path(sys.executable).with_name("dvc")
        return subprocess.call([str(dvc), "repro", *argv])


def serve(argv: list[str]) -> int:
    """Serve the retrain deployment until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m flows serve", description=serve.__doc__)
    parser.add_argument("--name", default="weekly", help="deployment name (default: %(default)s)")
    parser.add_argument("--cron", default=None, help="cron schedule (default: weekly, Mon 06:00)")
    parser.add_argument("--no-schedule", action="store_true", help="triggered runs only")
    parser.add_argument("--workspace", default=".", help="DVC workspace (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], dest="set_params",
                        metavar="SECTION.KEY=VALUE", help="params override (dvc exp run -S)")
    args = parser.parse_args(argv)
    if not os.environ.get("PREFECT_API_URL"):
        print("python -m flows serve: error: schedules need a running Prefect server; start one "
              "(prefect server start) and set PREFECT_API_URL=http://127.0.0.1:4200/api",
              file=sys.stderr)
        return 2
    from prefect import serve as prefect_serve

    from flows.retrain import WEEKLY, deployment

    cron = None if args.no_schedule else (args.cron or WEEKLY)
    params = {"workspace": str(Path(args.workspace).resolve()), "set_params": args.set_params}
    prefect_serve(deployment(name=args.name, cron=cron, parameters=params))
    return 0


if __name__ == "__main__":
    from flows.launcher import delegate

    code = delegate(sys.argv[1:])
    sys.exit(run_cli(sys.argv[1:]) if code is None else code)
