"""``python -m flows <stage> [options]``: run one stage's Prefect flow (what dvc.yaml calls).

Options are those of ``augment <stage>``; params are validated before Prefect starts, and
user-fixable errors end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from augment.cli import main as cli_main, stage_kwargs
from augment.config import load_params, stage_config


def _flows() -> dict:
    from flows.evaluate import evaluate_flow
    from flows.stages import judge_flow, prepare_flow, synthesize_flow, train_flow

    return {"prepare": prepare_flow, "judge": judge_flow, "train": train_flow, "synthesize": synthesize_flow,
            "evaluate": evaluate_flow}


def run_flow(args) -> None:
    """Validate the stage's params (fails before Prefect's start-up cost), then run its flow."""
    stage_config(load_params(args.params), args.stage)
    _flows()[args.stage](params_path=args.params, **stage_kwargs(args))


if __name__ == "__main__":
    sys.exit(cli_main(sys.argv[1:], runner=run_flow, prog="python -m flows"))
