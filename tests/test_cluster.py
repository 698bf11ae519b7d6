"""The evaluate grid on a cluster: evaluate.runner ray / dask, on a local Ray instance the runner
starts and on a Dask scheduler given by evaluate.address, give the in-process numbers.

The flows report to one Prefect server (``PREFECT_API_URL``, as ``python -m flows repro`` sets
it): the cluster's worker processes inherit the variable and record their task runs there.
Without it each worker process would start an ephemeral server of its own (seconds each, and
the task runs would not show with their flow run)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest
import yaml

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from augment import stages
from conftest import ROOT, tiny_params

GRID = {"variants": ["real", "real+oversample"], "seeds": 2}  # 4 fits
# what each fit writes, seed by seed: the flow's must match the in-process run's byte for byte
PER_SEED = ("runs.csv", "per_class_recall.csv")


def outputs(directory: Path, prepared: Path) -> dict:
    return dict(data=str(prepared), synthetic=str(directory / "none"),
                metrics=str(directory / "evaluate.json"), plots=str(directory / "plots"),
                report=str(directory / "evaluate.md"))


def results(directory: Path) -> dict:
    """The metrics json and the per-seed tables of a run into ``directory``."""
    return {"metrics": json.loads((directory / "evaluate.json").read_text()),
            **{name: (directory / "plots" / name).read_text() for name in PER_SEED}}


@pytest.fixture(scope="module")
def in_process(prepared, tmp_path_factory) -> dict:
    """The grid run by ``stages.evaluate`` itself, fit after fit in this process."""
    params = tiny_params()
    params["evaluate"].update(GRID)
    d = tmp_path_factory.mktemp("in_process")
    stages.evaluate.run(params, **outputs(d, prepared))
    return results(d)


def run_flow(tmp_path: Path, params: dict, prepared: Path, **evaluate) -> dict:
    """The grid as the evaluate flow with these evaluate settings: its results, and checks that
    its 4 fit tasks completed and were recorded under its flow run."""
    from flows.evaluate import evaluate_flow

    params["evaluate"].update(GRID, **evaluate)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    state = evaluate_flow(params_path=str(tmp_path / "params.yaml"), return_state=True,
                          **outputs(tmp_path, prepared))
    assert state.is_completed(), state
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(
            id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    assert sorted((r.name, r.state.type.value) for r in runs) == sorted(
        (f"{v}-seed{s}", "COMPLETED") for v in GRID["variants"] for s in range(GRID["seeds"]))
    return results(tmp_path)


# ------------------------------------------------------------------------------------------ ray
def ray_processes() -> dict[int, str]:
    """Live Ray processes on this machine (gcs_server, raylet, ray::workers, ray's python
    helpers), pid -> command line."""
    found = {}
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        try:
            name, cmd = p.info["name"] or "", " ".join(p.info["cmdline"] or [])
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if (name in ("raylet", "gcs_server") or name.startswith("ray::")
                    or cmd.startswith("ray::") or "site-packages/ray/" in cmd):
                found[p.pid] = cmd[:160]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_ray_task_runner_gives_the_same_numbers(tmp_path, params, prepared, in_process,
                                                prefect_api, monkeypatch):
    """evaluate.runner: ray, address null: the runner starts a local Ray instance (2 CPUs, no
    dashboard), the 4 fits run there as Ray tasks, and Ray is gone once the flow returns."""
    ray = pytest.importorskip("ray")
    prefect_ray = pytest.importorskip("prefect_ray")

    # Ray reads these when it starts its processes: 2 CPUs whatever the machine has, no
    # telemetry, and workers that import this checkout's flows/ and augment/.
    monkeypatch.setenv("RAY_OVERRIDE_RESOURCES", json.dumps({"CPU": 2}))
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))

    started, submitted = [], []
    real_init, real_submit = ray.init, prefect_ray.RayTaskRunner.submit

    def init(*args, **kwargs):
        context = real_init(*args, **kwargs)
        started.append({"args": args, "kwargs": kwargs, "cpus": ray.cluster_resources()["CPU"]})
        return context

    def submit(self, task, *args, **kwargs):
        future = real_submit(self, task, *args, **kwargs)
        submitted.append((task.name, type(future.wrapped_future)))
        return future

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(prefect_ray.RayTaskRunner, "submit", submit)

    before = ray_processes()
    assert not ray.is_initialized()
    try:
        got = run_flow(tmp_path, params, prepared, runner="ray")
    finally:
        still_up = ray.is_initialized()  # the runner shuts down the instance it started
        if still_up:
            ray.shutdown()
    assert got == in_process and not still_up

    assert len(started) == 1 and started[0]["args"] == ()  # a local instance, started once
    assert started[0]["kwargs"]["include_dashboard"] is False and started[0]["cpus"] == 2
    assert submitted == [("fit-classifier", ray.ObjectRef)] * 4

    deadline = time.monotonic() + 20  # ray.shutdown() kills its processes; give them time to go
    while (left := {pid: cmd for pid, cmd in ray_processes().items() if pid not in before}) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Ray processes left behind: {left}"


# ----------------------------------------------------------------------------------------- dask
def test_dask_task_runner_runs_on_the_scheduler_at_evaluate_address(tmp_path, params, prepared,
                                                                     in_process, prefect_api):
    """evaluate.runner: dask with evaluate.address: the fits run on that cluster's workers (a
    runner that ignored the address would start a cluster of its own and leave these idle)."""
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("prefect_dask")

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        got = run_flow(tmp_path, params, prepared, runner="dask",
                       address=cluster.scheduler_address)
        assert got == in_process
        # not set_as_default: a default client would hand its cluster to a runner that
        # ignored the address, and the test could not tell
        with distributed.Client(cluster, set_as_default=False) as client:
            executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
        prefixes = {name: dict(p.state_counts) for name, p in
                    cluster.scheduler.task_prefixes.items()}
    assert sum(executed.values()) == 4, executed
    assert prefixes["fit_classifier_task"]["memory"] == 4, prefixes


def test_a_local_dask_cluster_starts_its_workers_without_malloc_trim(prefect_api):
    """dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536, under which torch fits ran
    ~1.5-2x slower (benchmarks/RESULTS.md); the local cluster the evaluate flow starts leaves it
    unset. Without cluster_config the same flow's worker has it (so this can fail). (The fits'
    numbers on Dask workers are checked above, on a cluster at an address.)"""
    pytest.importorskip("prefect_dask")
    from prefect import flow, task

    from augment.config import EvaluateConfig
    from flows.evaluate import cluster_config, task_runner

    @task
    def worker_env(name: str) -> tuple[str | None, bool]:
        import os

        from distributed import get_worker
        get_worker()  # raises outside a dask worker: the task did run on the cluster
        return os.environ.get(name), True

    @flow
    def probe():
        return worker_env.submit("MALLOC_TRIM_THRESHOLD_").result()

    # dask's nanny also leaves the variable in the process that starts it, for later workers
    before = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    cfg = EvaluateConfig(runner="dask")
    run = probe.with_options(task_runner=task_runner(cfg))
    try:
        os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"  # such a leftover (dask's own value)
        with cluster_config(cfg):
            assert run() == (None, True)
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # put back afterwards
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
        assert run() == ("65536", True)  # dask's default, without cluster_config
        os.environ["MALLOC_TRIM_THRESHOLD_"] = "262144"  # a value of the user's own: kept
        with cluster_config(cfg):
            assert run() == ("262144", True)
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        if before is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = before
    with cluster_config(EvaluateConfig(runner="dask", address="tcp://127.0.0.1:1")):
        import dask
        assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"]
