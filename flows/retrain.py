"""Scheduled retraining: a Prefect flow that runs the DVC pipeline and publishes its results.

``retrain`` runs ``dvc repro`` in a workspace (or ``dvc exp run -S …`` when params overrides
are given), so every output stays versioned in DVC's cache and ``dvc.lock``; then it publishes
the evaluate stage's metrics as a table artifact and its verdict as a markdown artifact.
Optional: ``dvc push`` to the configured remote, a git commit of ``dvc.lock`` (+ params and
metrics) on a branch, made without touching the checkout.

:func:`deployment` declares it the Prefect way: a cron schedule (weekly by default), the
parameters above, retries with exponential backoff for transient failures (a user error, exit
status 2, is not retried), and a concurrency limit of one so that two runs never write the same
workspace at once (a second trigger waits in ``AwaitingConcurrencySlot``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.tasks import exponential_backoff

WEEKLY = "0 6 * * 1"  # Mondays 06:00 (UTC unless the server says otherwise)


class CommandFailed(RuntimeError):
    def __init__(self, cmd: list[str], returncode: int, output: str):
        super().__init__(f"{' '.join(cmd)} exited with {returncode}:\n{output[-4000:]}")
        self.returncode, self.output = returncode, output


def _transient(task, task_run, state) -> bool:
    """Retry unless a stage reported a user-fixable error (our CLI exits 2 for those).

    dvc reports a failed stage as "... exited with <status>": status 2 exactly, not 20-29,
    255 or -2, marks the user error.
    """
    import re

    try:
        state.result()
    except CommandFailed as err:
        return (re.search(r"exited with 2(?!\d)", err.output) is None
                and err.returncode != 2)
    except Exception:
        return True
    return False


def _run(cmd: list[str], cwd: str, **env_extra: str) -> str:
    env = {**os.environ, **env_extra,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode:
        raise CommandFailed(cmd, proc.returncode, output)
    return output


@task(retries=2, retry_delay_seconds=exponential_backoff(backoff_factor=30),
      retry_jitter_factor=0.5, retry_condition_fn=_transient, cache_policy=NO_CACHE)
def dvc(args: list[str], workspace: str) -> str:
    """``dvc <args>`` in the workspace; stage processes report to this run's Prefect API."""
    output = _run(["dvc", *args], workspace)
    print(output[-2000:])
    return output


def _metrics_rows(metrics: dict) -> list[dict]:
    """One row per variant: balanced accuracy with its CI, minority recall, Δ vs real."""
    rows = []
    for variant, m in metrics.items():
        if not isinstance(m, dict) or ":" in variant:
            continue
        gain = metrics.get(f"vs_real:{variant}", {})
        rows.append({"variant": variant, "balanced_accuracy": m.get("balanced_accuracy"),
                     "ci_95": f"[{m.get('balanced_accuracy_lo')}, {m.get('balanced_accuracy_hi')}]",
                     "minority_recall": m.get("minority_recall"),
                     "delta_vs_real": gain.get("balanced_accuracy"),
                     "p_vs_real": gain.get("balanced_accuracy_p")})
    return rows


@task(cache_policy=NO_CACHE)
def publish(workspace: str) -> dict:
    """Table artifact (with/without metrics) and markdown artifact (verdict, report, plots)."""
    root = Path(workspace).resolve()
    metrics = json.loads((root / "metrics/evaluate.json").read_text())
    create_table_artifact(_metrics_rows(metrics), key="augment-evaluation",
                          description="Test metrics per variant (mean over paired seeds)")
    report = (root / "reports/evaluate.md").read_text()
    plots = sorted((root / "plots").rglob("*.png"))
    links = "\n".join(f"- [{p.relative_to(root)}]({p.as_uri()})" for p in plots)
    create_markdown_artifact(f"{report}\n## Plots\n{links}\n", key="augment-report",
                             description=metrics.get("verdict", ""))
    return metrics


@task(cache_policy=NO_CACHE)
def commit_lock(workspace: str, branch: str, message: str) -> str:
    """Commit dvc.lock, params.yaml and metrics/ onto ``branch`` via a private index.

    The checkout, its index and its current branch are left alone; the branch starts at HEAD.
    """
    git = lambda *a, **env: _run(["git", *a], workspace, **env).strip()  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", "HEAD", **index)
        git("add", "-f", "dvc.lock", "params.yaml", "metrics", **index)
        tree = git("write-tree", **index)
    parent = _branch_tip(workspace, branch) or git("rev-parse", "HEAD")
    commit = git("-c", "user.name=augment", "-c", "user.email=augment@localhost",
                 "commit-tree", tree, "-p", parent, "-m", message)
    git("update-ref", f"refs/heads/{branch}", commit)
    return commit


def _branch_tip(workspace: str, branch: str) -> str | None:
    try:
        return _run(["git", "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
                    workspace).strip()
    except CommandFailed:
        return None


@flow(name="augment-retrain", log_prints=True)
def retrain(workspace: str = ".", set_params: list[str] | None = None, push: bool = False,
            commit_branch: str | None = None) -> dict:
    """Run the DVC pipeline in ``workspace``, publish its metrics, optionally push and commit.

    ``set_params``: overrides such as ``["train.epochs=80"]``, run as ``dvc exp run -S``.
    """
    overrides = [a for s in set_params or [] for a in ("-S", s)]
    dvc(["exp", "run", *overrides] if overrides else ["repro"], workspace)
    metrics = publish(workspace)
    if push:
        dvc(["push"], workspace)
    if commit_branch:
        commit_lock(workspace, commit_branch, f"augment retrain: {metrics.get('verdict', '')}")
    return metrics


def deployment(*, name: str = "weekly", cron: str | None = WEEKLY, parameters: dict | None = None):
    """The retrain deployment: schedule, parameters, and at most one run at a time."""
    limit = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    return retrain.to_deployment(name=name, cron=cron, parameters=parameters or {},
                                 concurrency_limit=limit, tags=["augment"],
                                 description="dvc repro / exp run, then publish the metrics")


def main(argv: list[str]) -> int:
    """``python -m flows serve``: serve the retrain deployment until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m flows serve", description=main.__doc__)
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

    cron = None if args.no_schedule else (args.cron or WEEKLY)
    params = {"workspace": str(Path(args.workspace).resolve()), "set_params": args.set_params}
    prefect_serve(deployment(name=args.name, cron=cron, parameters=params))
    return 0
