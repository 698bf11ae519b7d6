"""Prefect flow for the evaluate stage: the (variant × seed) grid runs as mapped tasks.

``evaluate.runner`` picks Prefect's task runner: ``threads`` (``evaluate.workers`` at once, in
this process), ``dask`` (prefect-dask) or ``ray`` (prefect-ray), on the cluster at
``evaluate.address`` or on a local one. A fit touches no global random state, so the numbers do
not depend on the runner or the number of workers.
"""

from __future__ import annotations

import contextlib
import importlib
import os

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from augment.config import EvaluateConfig, load_params, stage_config
from augment.errors import ConfigError
from augment.evaluate import evaluate_variant
from augment.stages import evaluate as evaluate_stage
from flows import fails_cleanly


# The inputs hold whole image arrays: hashing them for a cache key would cost more than it saves.
@task(name="fit-classifier", cache_policy=NO_CACHE, task_run_name="{job[variant]}-seed{job[seed]}")
def fit_classifier_task(job: dict) -> dict:
    return evaluate_variant(**job)


def _prefect_runner(fn, jobs):
    return [future.result() for future in fit_classifier_task.map(list(jobs))]


# runner -> (module, class, package to install)
_CLUSTER_RUNNERS = {"dask": ("prefect_dask", "DaskTaskRunner", "prefect-dask"),
                    "ray": ("prefect_ray", "RayTaskRunner", "prefect-ray")}


def task_runner(cfg: EvaluateConfig):
    """The Prefect task runner ``cfg.runner`` names, built once before the flow starts."""
    if cfg.runner == "threads":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    module, name, package = _CLUSTER_RUNNERS[cfg.runner]
    try:
        runner_cls = getattr(importlib.import_module(module), name)
    except ImportError:
        raise ConfigError(f"evaluate.runner: {cfg.runner!r} needs the {package} package; "
                          f"pip install {package} (or pip install 'augment[{cfg.runner}]'), "
                          "or use runner: threads") from None
    if cfg.address:
        return runner_cls(address=cfg.address)
    if cfg.runner == "ray":  # a local Ray instance without the dashboard's web UI and modules
        return runner_cls(init_kwargs={"include_dashboard": False})
    return runner_cls()


@contextlib.contextmanager
def cluster_config(cfg: EvaluateConfig):
    """Settings for the local cluster ``cfg.runner`` starts, in force while it runs.

    dask: its nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``
    (``distributed.nanny.pre-spawn-environ``), so glibc returns freed memory at once, and torch,
    which frees and allocates large blocks every step, ran a fit ~1.5-2x slower there
    (benchmarks/RESULTS.md). The local cluster's workers start without it. The nanny also
    leaves it in the environment of the process that started it, where later workers (dask's or
    ray's) would inherit it: that leftover (dask's own value) is taken out for the run too; a
    value you set yourself stays. A cluster at ``evaluate.address`` keeps its own configuration.
    """
    if cfg.runner != "dask" or cfg.address:
        yield
        return
    import dask
    import distributed  # noqa: F401  registers its defaults, which the set's undo would drop

    key, name = "distributed.nanny.pre-spawn-environ", "MALLOC_TRIM_THRESHOLD_"
    leftover = os.environ.get(name) == str(dask.config.get(key).get(name))
    saved = os.environ.pop(name) if leftover else None
    try:
        with dask.config.set({f"{key}.{name}": None}):
            yield
    finally:
        if saved is not None:
            os.environ[name] = saved


@flow(name="augment-evaluate", log_prints=True, validate_parameters=False)
@fails_cleanly
def _evaluate(params: dict, paths: dict) -> dict:
    return evaluate_stage.run(params, runner=_prefect_runner, **paths)


def evaluate_flow(params_path: str = "params.yaml", return_state: bool = False, **paths):
    """Run :func:`augment.stages.evaluate.run` as a flow, one Prefect task per (variant, seed)."""
    params = load_params(params_path)
    cfg = stage_config(params, "evaluate")
    runner = task_runner(cfg)
    with cluster_config(cfg):
        return _evaluate.with_options(task_runner=runner)(params=params, paths=paths,
                                                          return_state=return_state)
