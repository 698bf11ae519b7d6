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
import signal
import sys
from pathlib import Path

from flows import FLOW_MODULES
from flows.server import die_with_parent, run_interruptible, shared_server


# command -> the module whose main(argv) runs it (imported by that command alone)
COMMANDS = {"serve": "flows.retrain", "deps": "flows.deps"}


def stage_flow(stage: str):
    return getattr(importlib.import_module(FLOW_MODULES[stage]), f"{stage}_flow")


def run_flow(args) -> None:
    """Validate the stage's params (fails before Prefect's start-up cost), then run its flow.

    Run by DVC (``DVC_STAGE`` set), the stage ends when ``dvc`` does (its parent, as dvc.yaml
    ``exec``s the stage instead of leaving a shell between them): a stage whose ``dvc`` was
    killed can no longer record its outputs, and must not compute on as an orphan (SIGTERM
    would not do: Prefect turns it into an exception, and the evaluate grid's worker threads
    would finish their fits first)."""
    from augment.cli import stage_kwargs
    from augment.config import load_params, stage_config

    if os.environ.get("DVC_STAGE"):  # no clean-up owed to a dead dvc: outputs are atomic
        die_with_parent(signal.SIGKILL)
    stage_config(load_params(args.params), args.stage)
    stage_flow(args.stage)(params_path=args.params, **stage_kwargs(args))


def run_cli(argv: list[str]) -> int:
    """``python -m flows <argv>`` in this process.

    Prefect's server analytics are off unless set: a stage's own temporary server (plain ``dvc
    repro``) would otherwise send telemetry heartbeats, which found its database locked by the
    flow run and logged their traceback amid the stage's output (and need internet anyway)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
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
        code = run_interruptible([str(Path(sys.executable).with_name("dvc")), "repro", *argv])
    if code and (others := dvc_lock_holders(Path.cwd())):
        print("python -m flows repro: another DVC command holds this workspace "
              f"({'; '.join(others)}); DVC runs one at a time per workspace. Wait for it to "
              "finish, or run experiments side by side in their own workspaces: "
              "dvc exp run --queue ..., then dvc queue start -j N", file=sys.stderr)
    return code


def dvc_lock_holders(start: Path) -> list[str]:
    """Live processes that hold the DVC workspace at or above ``start``: its repository lock
    (``.dvc/tmp/lock``) or the stage locks of ``.dvc/tmp/rwlock`` ("PID n: command")."""
    import json

    import zc.lockfile

    from augment.io import pid_alive

    root = next((d for d in (start, *start.parents) if (d / ".dvc").is_dir()), None)
    if root is None:
        return []
    holders = set()
    try:
        zc.lockfile.LockFile(str(root / ".dvc/tmp/lock")).close()
    except zc.lockfile.LockError:
        holders.add("the repository lock")
    except OSError:
        pass
    try:
        locks = json.loads((root / ".dvc/tmp/rwlock").read_text())
    except (OSError, ValueError):
        locks = {}
    for mode in ("read", "write"):
        for infos in (locks.get(mode) or {}).values():
            for info in infos if isinstance(infos, list) else [infos]:
                if pid_alive(int(info["pid"])):
                    holders.add(f"PID {info['pid']}: {info['cmd']}")
    return sorted(holders)



if __name__ == "__main__":
    sys.exit(run_cli(sys.argv[1:]))
