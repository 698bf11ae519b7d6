"""Prefect flow for the evaluate stage: the (variant × seed) grid runs as mapped tasks."""

from __future__ import annotations

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from augment import stages
from augment.config import load_params
from augment.evaluate import evaluate_variant


# The inputs hold whole image arrays: hashing them for a cache key would cost more than it saves.
@task(name="fit-classifier", cache_policy=NO_CACHE, task_run_name="{job[variant]}-seed{job[seed]}")
def fit_classifier_task(job: dict) -> dict:
    return evaluate_variant(**job)


def _prefect_runner(fn, jobs):
    return [future.result() for future in fit_classifier_task.map(list(jobs))]


# One worker: the runs seed torch's global RNG, so threads would make results depend on timing.
@flow(name="augment-evaluate", log_prints=True, validate_parameters=False,
      task_runner=ThreadPoolTaskRunner(max_workers=1))
def evaluate_flow(params_path: str = "params.yaml", **paths) -> dict:
    """Run :func:`augment.stages.evaluate`, one Prefect task per (variant, seed)."""
    return stages.evaluate(load_params(params_path), runner=_prefect_runner, **paths)
