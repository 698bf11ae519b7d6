"""``python -m flows <stage> [options]``: run one stage's Prefect flow (what dvc.yaml calls).

Options are those of ``augment <stage>``; params are validated before Prefect starts, and
user-fixable errors end with one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from augment.cli import build_parser, stage_kwargs
from augment.config import load_params, stage_config
from augment.errors import AugmentError


def _flows() -> dict:
    from flows.evaluate import evaluate_flow
    from flows.stages import prepare_flow, synthesize_flow, train_flow

    return {"prepare": prepare_flow, "train": train_flow, "synthesize": synthesize_flow,
            "evaluate": evaluate_flow}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        stage_config(load_params(args.params), args.stage)  # fail before Prefect's start-up
        _flows()[args.stage](params_path=args.params, **stage_kwargs(args))
    except AugmentError as err:
        print(f"{args.stage} flow: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
