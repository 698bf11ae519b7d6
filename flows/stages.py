"""Prefect flows for the prepare, judge, train and synthesize stages: each runs one stage's
``augment.stages.<stage>.run`` with the params file it is given (imported when the flow runs, so
a stage process loads only its own stage's code)."""

from __future__ import annotations

import importlib

from prefect import flow

from augment.config import load_params
from flows import fails_cleanly


def _stage_flow(stage: str):
    @flow(name=f"augment-{stage}", log_prints=True, validate_parameters=False)
    @fails_cleanly
    def run(params_path: str = "params.yaml", **paths) -> dict:
        module = importlib.import_module(f"augment.stages.{stage}")
        return module.run(load_params(params_path), **paths)

    run.__doc__ = f"Run :func:`augment.stages.{stage}.run` with the params at ``params_path``."
    return run


prepare_flow = _stage_flow("prepare")
judge_flow = _stage_flow("judge")
train_flow = _stage_flow("train")
synthesize_flow = _stage_flow("synthesize")
