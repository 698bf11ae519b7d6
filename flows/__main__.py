"""``python -m flows <command>``.

- ``python -m flows <stage> [options]``: run one stage's Prefect flow (what dvc.yaml calls).
  Options are those of ``augment <stage>``; params are validated before Prefect starts, and
  user-fixable errors end with one line on stderr and exit status 2.
- ``python -m flows repro [dvc repro args]``: ``dvc repro`` with one Prefect server shared by
  every stage process (started on loopback unless ``PREFECT_API_URL`` is set). Ctrl-C or
  SIGTERM stops dvc, the running stage and the server; if this process is killed outright, the
  kernel stops them (:mod:`flows.server`).
- ``python -m flows serve [--name N] [--cron C] [--set k=v ...]``: serve the scheduled
  ``retrain`` deployment (needs a running Prefect server: ``PREFECT_API_URL``; :mod:`flows.retrain`).
- ``python -m flows deps [--check]``: the code each stage runs, as dvc.yaml lists it
  (:mod:`flows.deps`).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from flows.server import die_with_parent, run_interruptible, shared_server


# stage -> the module holding its flow, ``<stage>_flow`` (imported by that stage alone)
FLOW_MODULES = {"prepare": "flows.stages", "judge": "flows.stages", "train": "flows.stages",
                "synthesize": "flows.stages", "evaluate": "flows.evaluate"}


# command -> the module whose main(argv) runs it (imported by that command alone)
COMMANDS = {"serve": "flows.retrain", "deps": "flows.deps"}


def stage_flow(stage: str):
    return getattr(importlib.import_module(FLOW_MODULES[stage]), f"{stage}_flow")


def run_flow(args) -> None:
    """Validate the stage's params (fails before Prefect's start-up cost), then run its flow.

    Run by DVC (``DVC_STAGE`` set), the stage ends when ``dvc`` does: a stage whose ``dvc`` was
    killed can no longer record its outputs, and must not compute on as an orphan."""
    from augment.cli import stage_kwargs
    from augment.config import load_params, stage_config

    if os.environ.get("DVC_STAGE"):
        die_with_parent()
    stage_config(load_params(args.params), args.stage)
    stage_flow(args.stage)(params_path=args.params, **stage_kwargs(args))


def run_cli(argv: list[str]) -> int:
    """``python -m flows <argv>`` in this process."""
    if argv and argv[0] == "repro":
        return repro(argv[1:])
    if argv and argv[0] in COMMANDS:
        return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    from augment.cli import main as cli_main

    return cli_main(argv, runner=run_flow, prog="python -m flows")


def repro(argv: list[str]) -> int:
    """``dvc repro <argv>`` under one shared Prefect server; stopped as a whole (see
    :func:`flows.server.run_interruptible`)."""
    with shared_server():
        return run_interruptible([str(Path(sys.executable).with_name("dvc")), "repro", *argv])


if __name__ == "__main__":
    sys.exit(run_cli(sys.argv[1:]))
