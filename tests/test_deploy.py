"""The retrain deployment against a real Prefect server on loopback.

The session's server (``prefect_api`` in conftest.py, bounded start-up); ``python -m flows
serve`` serves the deployment over a temporary DVC repo with tiny params; runs are triggered
through the API with ``run_deployment``, as a scheduler or a teammate would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from conftest import ROOT, make_dvc_repo, run_checked, tiny_params
from flows.retrain import CommandFailed, _run, _transient, retrain
from flows.server import stop_group

DEPLOYMENT = "augment-retrain/test"


@pytest.fixture(scope="module")
def served(prefect_api, tmp_path_factory):
    """A DVC workspace and a ``python -m flows serve`` process serving the deployment on it."""
    repo = tmp_path_factory.mktemp("workspace")
    env = make_dvc_repo(repo)
    env.update(PREFECT_API_URL=prefect_api, PREFECT_RUNNER_POLL_FREQUENCY="1")
    dvc = str(Path(sys.executable).with_name("dvc"))
    run_checked([dvc, "remote", "add", "-d", "store", str(repo.parent / "store")], repo, env)
    log = (repo.parent / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--name", "test",
                             "--no-schedule", "--workspace", str(repo)], cwd=repo, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        asyncio.run(_wait_for_deployment(proc, timeout=120))
        yield repo, env
    finally:
        stop_group(proc, timeout=20)
        log.close()


async def _wait_for_deployment(proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "python -m flows serve exited early"
            try:
                await client.read_deployment_by_name(DEPLOYMENT)
                return
            except Exception:
                await asyncio.sleep(0.5)
    raise TimeoutError(f"{DEPLOYMENT} not registered within {timeout} s")


async def _runs_and_states(ids):
    async with get_client() as client:
        runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
        states = {r.id: [s.name for s in await client.read_flow_run_states(r.id)] for r in runs}
        return {r.id: r for r in runs}, states


async def _artifact_keys(flow_run_id) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        found = await client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        return {a.key for a in found}


def test_triggered_run_publishes_and_commits_a_branch_that_reproduces_it(served, tmp_path):
    repo, env = served
    run = run_deployment(DEPLOYMENT, parameters={"commit_branch": "augment/retrain", "push": True},
                         timeout=900, poll_interval=1)
    assert run.state.is_completed(), run.state
    pushed = [f for f in (repo.parent / "store").rglob("*") if f.is_file()]
    assert len(pushed) > 10, "dvc push sent nothing to the remote"
    assert _artifact_keys_sync(run.id) >= {"augment-evaluation", "augment-report"}
    dvc = str(Path(sys.executable).with_name("dvc"))
    assert "up to date" in run_checked([dvc, "status"], repo, env)
    # dvc.lock committed on the branch; the checkout stays on its own branch.
    committed = run_checked(["git", "show", "augment/retrain:dvc.lock"], repo, env)
    assert committed == (repo / "dvc.lock").read_text()
    assert run_checked(["git", "branch", "--show-current"], repo, env).strip() != "augment/retrain"
    # The branch with DVC's cache gives every output of the run: the git-tracked report, plots
    # and dvclive curves too, not stale ones beside new metrics.
    clone = tmp_path / "clone"
    run_checked(["git", "clone", "-q", "-b", "augment/retrain", str(repo), str(clone)], tmp_path,
                env)
    run_checked([dvc, "cache", "dir", "--local", str(repo / ".dvc" / "cache")], clone, env)
    run_checked([dvc, "checkout"], clone, env)
    assert "Data and pipelines are up to date" in run_checked([dvc, "status"], clone, env)
    # A one-line subject; the verdict in the body.
    subject, _, body = run_checked(["git", "log", "-1", "--format=%B", "augment/retrain"], repo,
                                   env).partition("\n")
    assert 0 < len(subject) <= 72, subject
    assert json.loads((repo / "metrics" / "evaluate.json").read_text())["verdict"] in body


def _artifact_keys_sync(flow_run_id) -> set[str]:
    return asyncio.run(_artifact_keys(flow_run_id))


def test_overlapping_triggers_run_one_at_a_time(served):
    # Two experiments on the same workspace, triggered together: the second must wait. (An
    # evaluate key each: DVC reruns that stage alone, the rest is the run above's.)
    first = run_deployment(DEPLOYMENT, parameters={"set_params": ["evaluate.epochs=1"]}, timeout=0)
    second = run_deployment(DEPLOYMENT, parameters={"set_params": ["evaluate.epochs=3"]},
                            timeout=0)
    ids = [first.id, second.id]
    deadline = time.monotonic() + 900
    while True:
        runs, states = asyncio.run(_runs_and_states(ids))
        if all(r.state.is_final() for r in runs.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert all(r.state.is_completed() for r in runs.values()), {i: r.state for i, r in runs.items()}
    a, b = sorted(runs.values(), key=lambda r: r.start_time)
    assert a.end_time <= b.start_time, "the two retrain runs overlapped"
    assert any("AwaitingConcurrencySlot" in s for s in states[b.id]), states[b.id]


def _workspace_files(root: Path) -> dict[str, str]:
    """Every file of the workspace with its SHA-256, but git's and DVC's own folders, bytecode
    and the train stage's resume scratch (``models/train-resume``: ignored by git and DVC)."""
    skip = {".git", ".dvc", "__pycache__", "train-resume"}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not skip & set(p.relative_to(root).parts)}


def test_a_failed_retrain_leaves_the_workspace_as_it_was(served):
    # The judge stage reruns and passes (dvc.lock and models/judge.pt change), then the train
    # stage fails its quality guard after DVC deleted its outputs (models/gan.pt, cached;
    # metrics/quality.json, plots/train, dvclive/: git-tracked) and dvc exp run wrote both
    # overrides into params.yaml. Afterwards the workspace must be byte for byte as before (as
    # the earlier tests left it, not as HEAD has it) and the flow run Failed.
    repo, env = served
    retrain(workspace=str(repo))  # the outputs in place (nothing to rerun after the tests above)
    dvc = str(Path(sys.executable).with_name("dvc"))
    before = _workspace_files(repo)
    state = retrain(workspace=str(repo), set_params=["judge.epochs=1", "train.min_diversity=0.99"],
                    return_state=True)
    assert state.is_failed(), state
    assert "train.min_diversity" in state.message, state.message
    after = _workspace_files(repo)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    assert not changed, f"the failed run left these changed: {changed}"
    assert "Data and pipelines are up to date" in run_checked([dvc, "status"], repo, env)


@pytest.fixture(scope="module")
def plain_repo(tmp_path_factory):
    """A DVC workspace with tiny params, never reproduced: for runs refused before any stage."""
    repo = tmp_path_factory.mktemp("plain")
    return repo, make_dvc_repo(repo)


@pytest.mark.parametrize("args, names", [
    (["--set", "train.epoch=80"], "train: unknown key(s) epoch; allowed keys are: preset"),
    (["--set", "train.epochs=0"], "train.epochs: got 0"),
    (["--workspace", "/nonexistent"], "workspace /nonexistent: no such folder"),
    (["--cron", "every monday"], "--cron 'every monday': not a cron schedule"),
])
def test_serve_refuses_what_every_scheduled_run_would_fail_on(prefect_api, plain_repo, args,
                                                              names):
    repo, env = plain_repo
    assert names in _serve_refused(repo, {**env, "PREFECT_API_URL": prefect_api}, args)


def test_serve_refuses_an_override_of_a_key_params_yaml_lacks(prefect_api, tmp_path):
    # Valid for the stage (its default applies), but dvc exp run -S changes only existing keys.
    params = tiny_params()
    del params["train"]["minutes"]
    env = {**make_dvc_repo(tmp_path, params), "PREFECT_API_URL": prefect_api}
    error = _serve_refused(tmp_path, env, ["--set", "train.minutes=5"])
    assert "train.minutes is not in" in error and "+train.minutes=5" in error


def _serve_refused(repo: Path, env: dict, args: list[str]) -> str:
    """``python -m flows serve`` on ``repo`` with ``args``: its one-line error (exit status 2)."""
    proc = subprocess.run([sys.executable, "-m", "flows", "serve", "--name", "refused",
                           "--workspace", str(repo), *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)  # serving runs until killed
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("python -m flows serve: error: "), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_a_run_triggered_with_a_bad_override_fails_at_once_in_one_line(plain_repo):
    # set_params given at trigger time (UI, prefect deployment run -p) skip serve's check.
    repo, _ = plain_repo
    params = (repo / "params.yaml").read_bytes()
    started = time.monotonic()
    state = retrain(workspace=str(repo), set_params=["train.epoch=80"], return_state=True)
    assert state.is_failed(), state
    assert "train: unknown key(s) epoch" in state.message, state.message
    assert "\n" not in state.message, state.message
    assert time.monotonic() - started < 30, "retried"
    assert (repo / "params.yaml").read_bytes() == params


@pytest.mark.parametrize("override", ["train.epoch=80", "train.epochs"])
def test_dvc_refusing_an_override_is_not_retried(plain_repo, override):
    # DVC's refusal exits 255, as a crash does; the same override is refused every time.
    repo, _ = plain_repo
    with pytest.raises(CommandFailed) as refused:
        _run(["dvc", "exp", "run", "-S", override], str(repo))
    assert refused.value.returncode == 255
    assert _transient(None, None, _FailedState(refused.value)) is False


class _FailedState:
    """What Prefect hands the retry condition: a state whose ``result()`` raises ``err``."""

    def __init__(self, err):
        self.err = err

    def result(self):
        raise self.err


def _stage_failed(status: int, tail: str = "") -> CommandFailed:
    """``dvc repro`` failing (exit 1) because a stage's command exited with ``status``, worded
    as dvc words it."""
    return CommandFailed(["dvc", "repro"], 1, "ERROR: failed to reproduce 'train': failed to run: "
                                              f"python -m flows train, exited with {status}{tail}")


@pytest.mark.parametrize("status, tail, retried", [
    (2, "", False), (2, "\n", False),  # our CLI's user error: retrying cannot help
    (20, "", True), (25, "\n", True), (255, "", True),  # other statuses that start with a 2
    (-2, "", True), (-9, "", True), (1, "", True), (12, "", True),  # signals, crashes
])
def test_user_errors_are_not_retried_but_transient_ones_are(status, tail, retried):
    assert _transient(None, None, _FailedState(_stage_failed(status, tail))) is retried


def test_retry_condition_on_the_command_status_and_other_errors():
    user = CommandFailed(["dvc", "exp", "run"], 2, "ERROR: unexpected error")
    assert _transient(None, None, _FailedState(user)) is False
    crash = CommandFailed(["dvc", "push"], 255, "ERROR: failed to push data to the cloud")
    assert _transient(None, None, _FailedState(crash)) is True
    assert _transient(None, None, _FailedState(ConnectionError("remote unreachable"))) is True

    class Completed:
        def result(self):
            return "ok"

    assert _transient(None, None, Completed()) is False


def test_prefect_yaml_deploys_schedule_limit_and_workspace(prefect_api, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "AUGMENT_WORKSPACE": str(tmp_path)}
    prefect = str(Path(sys.executable).with_name("prefect"))
    run_checked([prefect, "work-pool", "create", "augment", "--type", "process"], ROOT, env)
    run_checked([prefect, "--no-prompt", "deploy", "--all"], ROOT, env)
    deployment = asyncio.run(_read_deployment("augment-retrain/weekly"))
    assert [s.schedule.cron for s in deployment.schedules] == ["0 6 * * 1"]
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory":
                                      {"directory": str(tmp_path)}}]
    assert deployment.parameters["set_params"] == [] and deployment.work_pool_name == "augment"


async def _read_deployment(name: str):
    async with get_client() as client:
        return await client.read_deployment_by_name(name)
