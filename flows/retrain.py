"""Scheduled retraining: a Prefect flow that runs the DVC pipeline and publishes its results.

``retrain`` runs ``dvc repro`` in a workspace (or ``dvc exp run -S …`` when params overrides
are given), so every output stays versioned in DVC's cache and ``dvc.lock``; then it publishes
the evaluate stage's metrics as a table artifact and its verdict as a markdown artifact.
A run that fails leaves the workspace as it found it (:func:`restored_on_failure`).
Optional: ``dvc push`` to the configured remote, a git commit of ``dvc.lock``, the params and
every git-tracked output on a branch, made without touching the checkout.

:func:`deployment` declares it the Prefect way: a cron schedule (weekly by default), the
parameters above, retries with exponential backoff for transient failures (a user error, exit
status 2, or DVC refusing an override is not retried), and a concurrency limit of one so that
two runs never write the same workspace at once (a second trigger waits in
``AwaitingConcurrencySlot``). ``python -m flows serve`` checks the workspace, the overrides and
the cron string before it serves.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import yaml
from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.tasks import exponential_backoff

from augment.config import SECTIONS, load_params, override, stage_config
from augment.errors import ConfigError
from flows import fails_cleanly

WEEKLY = "0 6 * * 1"  # Mondays 06:00 (UTC unless the server says otherwise)
SUBJECT_MAX = 72  # a git subject line that `git log --oneline` and web views show whole

# DVC refusing a -S override (Hydra's override parser: a key the params file lacks, bad syntax).
# It exits 255 like a crash, but the same override is refused every time.
OVERRIDE_REFUSED = re.compile(r"Invalid `--set-param` value|hydra\.cc/docs/\S*override_grammar")


class CommandFailed(RuntimeError):
    def __init__(self, cmd: list[str], returncode: int, output: str):
        super().__init__(f"{' '.join(cmd)} exited with {returncode}:\n{output[-4000:]}")
        self.returncode, self.output = returncode, output


def _transient(task, task_run, state) -> bool:
    """Retry unless the failure is one a retry repeats: a stage's user-fixable error (our CLI
    exits 2 for those) or DVC refusing an override.

    dvc reports a failed stage as "... exited with <status>": status 2 exactly, not 20-29,
    255 or -2, marks the user error. DVC's own refusal of ``-S`` exits 255, as a crash does, so
    it is told by its message (:data:`OVERRIDE_REFUSED`).
    """
    try:
        state.result()
    except CommandFailed as err:
        return (re.search(r"exited with 2(?!\d)", err.output) is None
                and err.returncode != 2 and OVERRIDE_REFUSED.search(err.output) is None)
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


# --- checks before anything runs -------------------------------------------------------------

def check_workspace(workspace: str) -> Path:
    """The workspace folder, if it is a DVC project with this pipeline's files."""
    root = Path(workspace).resolve()
    fix = "pass --workspace (or the workspace parameter) the folder of dvc.yaml and params.yaml"
    if not root.is_dir():
        raise ConfigError(f"workspace {workspace}: no such folder; {fix}")
    for name in ("dvc.yaml", "params.yaml"):
        if not (root / name).is_file():
            raise ConfigError(f"workspace {root}: no {name} there; {fix}")
    if not any((d / ".dvc").is_dir() for d in (root, *root.parents)):
        raise ConfigError(f"workspace {root}: not in a DVC repository; run dvc init there "
                          "(and git init: dvc exp run needs both)")
    return root


def check_overrides(workspace: str, assignments: list[str]) -> None:
    """Refuse an override the run would fail on, each named: the checks the stages make on
    params.yaml after ``dvc exp run -S`` wrote it (unknown keys, types, ranges), and DVC's own
    rule that ``-S key=value`` changes only keys the file has (``+key=value`` adds one)."""
    path = check_workspace(workspace) / "params.yaml"
    params = base = load_params(path)
    _check_params(base, str(path))
    for item in assignments:
        name, value = _override_parts(item)
        try:
            params = override(params, [f"{name}={value}"])
        except yaml.YAMLError as err:  # DVC parses the value as YAML too
            raise ConfigError(f"--set {item}: {value!r} is not a YAML value "
                              f"({getattr(err, 'problem', None) or err}); quote it") from None
        _check_params(params, f"--set {item}")
        if not item.startswith("+") and not _has_key(base, name):
            raise ConfigError(f"--set {item}: {name} is not in {path}, and dvc exp run -S "
                              f"changes only keys the file has; add it there, or write +{item}")


def _override_parts(item: str) -> tuple[str, str]:
    """``(section.key, value)`` of ``[+]section.key=value`` (``params.yaml:`` before the key
    allowed, as DVC allows a file there)."""
    key, sep, value = item.partition("=")
    name = key.lstrip("+").removeprefix("params.yaml:")
    if not sep or not name:
        raise ConfigError(f"--set {item}: expected section.key=value or seed=value")
    if ":" in name:
        raise ConfigError(f"--set {item}: the stages read params.yaml only; write "
                          f"{name.partition(':')[2]}={value}")
    return name, value


def _check_params(params: dict, where: str) -> None:
    """What each stage checks before it starts (``load_params``, then its ``stage_config``),
    on ``params`` as DVC writes them into params.yaml and the stage reads them back; an error
    names ``where``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
        try:
            loaded = load_params(path)
            for section in SECTIONS:
                stage_config(loaded, section)
        except ConfigError as err:
            raise ConfigError(f"{where}: {str(err).removeprefix(f'{path}: ')}") from None


def _has_key(params: dict, dotted: str) -> bool:
    node = params
    for name in dotted.split("."):
        if not isinstance(node, dict) or name not in node:
            return False
        node = node[name]
    return True


def check_cron(cron: str) -> None:
    """Refuse a schedule Prefect would refuse (its own validator: croniter, no R/H fields)."""
    from prefect.client.schemas.schedules import CronSchedule
    from pydantic import ValidationError

    try:
        CronSchedule(cron=cron)
    except ValidationError:
        raise ConfigError(f"--cron {cron!r}: not a cron schedule; give five fields, minute hour "
                          "day-of-month month day-of-week, e.g. \"0 6 * * 1\" (Mondays 06:00)"
                          ) from None


# --- a failed run leaves the workspace as it was ---------------------------------------------

def _pipeline(root: Path) -> tuple[list[str], list[str], list[str]]:
    """``(written, cached, uncached)``, paths relative to ``root`` from the pipeline as DVC reads
    it: the files a run rewrites besides outputs (each dvc.lock, the params files), the outputs
    DVC keeps in its cache, and those it does not (``cache: false``)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    def rel(path: str) -> str:
        return os.path.relpath(path, root)

    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if s.path.endswith("dvc.yaml")]
        written = {"params.yaml", *(rel(str(Path(s.path).with_name("dvc.lock"))) for s in stages),
                   *(rel(d.fs_path) for s in stages for d in s.deps
                     if isinstance(d, ParamsDependency))}
        outs = [o for s in repo.index.stages for o in s.outs]
        return (sorted(written), sorted({rel(o.fs_path) for o in outs if o.use_cache}),
                sorted({rel(o.fs_path) for o in outs if not o.use_cache}))


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _snapshot(root: Path, paths: list[str], dest: Path) -> dict[str, bool]:
    """Copy each of ``paths`` (files or folders under ``root``) into ``dest``; returns which
    existed."""
    existed = {}
    for rel in dict.fromkeys(paths):
        existed[rel] = (root / rel).exists()
        if existed[rel]:
            _copy(root / rel, dest / rel)
    return existed


@task(cache_policy=NO_CACHE)
def restore(workspace: str, snapshot: str, existed: dict[str, bool]) -> None:
    """Put back the files saved in ``snapshot`` (one the run created is removed), then ``dvc
    checkout`` the cached outputs the restored dvc.lock records."""
    root = Path(workspace).resolve()
    for rel, was in existed.items():
        _remove(root / rel)
        if was:
            _copy(Path(snapshot) / rel, root / rel)
    try:
        _run(["dvc", "checkout"], workspace)
    except CommandFailed as err:  # it will not drop a cached output changed and not saved
        print(f"WARNING: dvc.lock, the params and the uncached outputs are restored, but dvc "
              f"checkout failed, so some cached outputs are not (see dvc status; dvc checkout "
              f"--force replaces them):\n{err.output[-2000:]}")
        return
    print(f"the failed run's changes to {root} are undone")


@contextmanager
def restored_on_failure(workspace: str):
    """Run the body; if it fails, leave the workspace as it was before, then re-raise.

    A failed ``dvc exp run -S`` leaves its overrides in params.yaml, the failed stage's outputs
    deleted (DVC removes them before it runs a stage) and the stages that passed before it
    updated in dvc.lock: ``dvc status``, later runs and library users all see a broken
    workspace. So the files DVC rewrites outside its cache (each dvc.lock, the params files,
    every ``cache: false`` output) are copied aside first and put back on failure; ``dvc
    checkout`` then restores the cached outputs from DVC's cache, which keeps every version.
    A copy, not git: the workspace need not equal HEAD (a previous run's uncommitted results
    are restored as they were, not replaced by older committed ones), and an ignored output is
    not in git at all. Not ``dvc exp run --temp`` either: it runs in a copy that lacks the
    git-ignored files DVC does not track (own data under ``data/raw``), and a successful run
    should update the workspace (publish reads it, the next run builds on it), which would take
    a second step, ``dvc exp apply``.
    """
    root = Path(workspace).resolve()
    written, _cached, uncached = _pipeline(root)
    with tempfile.TemporaryDirectory(prefix="augment-retrain-") as snapshot:
        existed = _snapshot(root, [*written, *uncached], Path(snapshot))
        try:
            yield
        except Exception:
            restore(workspace, snapshot, existed)
            raise


# --- results ---------------------------------------------------------------------------------

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


def commit_message(metrics: dict) -> str:
    """A subject line of at most :data:`SUBJECT_MAX` characters (the recommended variant and
    its test balanced accuracy), then the whole verdict as the body."""
    verdict = metrics.get("verdict", "")
    best = metrics.get("recommended")
    score = (metrics.get(best) or {}).get("balanced_accuracy") if best else None
    if isinstance(score, (int, float)):
        subject = f"augment retrain: {best}, bal. acc. {score:.4f}"
    else:
        first = verdict.split(". ")[0].rstrip(".")
        subject = f"augment retrain: {first}" if first else "augment retrain"
    if len(subject) > SUBJECT_MAX:
        subject = subject[:SUBJECT_MAX - 1] + "…"
    return f"{subject}\n\n{verdict}\n" if verdict else subject


def _tracked_files(workspace: str, env: dict) -> list[str]:
    """What a commit of the run holds, from the pipeline: each dvc.lock, the params files and
    every output git does not ignore (``cache: false``: metrics, plots, reports, dvclive),
    plus the .gitignore beside each ignored (cached) output, which DVC writes to keep it out
    of git."""
    root = Path(workspace).resolve()
    written, cached, uncached = _pipeline(root)
    candidates = [*written, *uncached, *(str(Path(c).parent / ".gitignore") for c in cached)]
    present = [p for p in dict.fromkeys(candidates) if (root / p).exists()]
    if not present:
        return []
    proc = subprocess.run(["git", "check-ignore", "--stdin"], cwd=workspace, input="\n".join(
        present), env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode > 1:  # 1: none of them is ignored
        raise CommandFailed(["git", "check-ignore"], proc.returncode, proc.stdout + proc.stderr)
    ignored = set(proc.stdout.splitlines())
    return [p for p in present if p not in ignored]


@task(cache_policy=NO_CACHE)
def commit_results(workspace: str, branch: str, message: str) -> str:
    """Commit the run's git-tracked files (:func:`_tracked_files`) onto ``branch`` via a private
    index, so that the branch and DVC's cache reproduce the workspace: ``dvc checkout`` there
    gives every output, ``dvc status`` finds nothing to rerun.

    The checkout, its index and its current branch are left alone; the branch starts at HEAD.
    """
    git = lambda *a, **env: _run(["git", *a], workspace, **env).strip()  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git("read-tree", "HEAD", **index)
        if files := _tracked_files(workspace, index):  # no paths: `git add -A` would add all
            git("add", "-A", "--", *files, **index)
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
@fails_cleanly
def retrain(workspace: str = ".", set_params: list[str] | None = None, push: bool = False,
            commit_branch: str | None = None) -> dict:
    """Run the DVC pipeline in ``workspace``, publish its metrics, optionally push and commit.

    ``set_params``: overrides such as ``["train.epochs=80"]``, run as ``dvc exp run -S``; they
    are checked first (:func:`check_overrides`: a run triggered with other parameters than the
    served ones gets the same one-line error). A failed pipeline run leaves the workspace as it
    was (:func:`restored_on_failure`) and ends the flow run Failed.
    """
    check_overrides(workspace, set_params or [])
    overrides = [a for s in set_params or [] for a in ("-S", s)]
    with restored_on_failure(workspace):
        dvc(["exp", "run", *overrides] if overrides else ["repro"], workspace)
    metrics = publish(workspace)
    if push:
        dvc(["push"], workspace)
    if commit_branch:
        commit_results(workspace, commit_branch, commit_message(metrics))
    return metrics


def deployment(*, name: str = "weekly", cron: str | None = WEEKLY, parameters: dict | None = None):
    """The retrain deployment: schedule, parameters, and at most one run at a time."""
    limit = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    return retrain.to_deployment(name=name, cron=cron, parameters=parameters or {},
                                 concurrency_limit=limit, tags=["augment"],
                                 description="dvc repro / exp run, then publish the metrics")


def main(argv: list[str]) -> int:
    """``python -m flows serve``: serve the retrain deployment until interrupted."""
    prog = "python -m flows serve"
    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    parser.add_argument("--name", default="weekly", help="deployment name (default: %(default)s)")
    parser.add_argument("--cron", default=None, help="cron schedule (default: weekly, Mon 06:00)")
    parser.add_argument("--no-schedule", action="store_true", help="triggered runs only")
    parser.add_argument("--workspace", default=".", help="DVC workspace (default: %(default)s)")
    parser.add_argument("--set", action="append", default=[], dest="set_params",
                        metavar="SECTION.KEY=VALUE", help="params override (dvc exp run -S)")
    args = parser.parse_args(argv)
    cron = None if args.no_schedule else (args.cron or WEEKLY)
    try:  # what would fail at every scheduled run fails now, before serving
        check_overrides(args.workspace, args.set_params)
        if cron:
            check_cron(cron)
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if not os.environ.get("PREFECT_API_URL"):
        print(f"{prog}: error: schedules need a running Prefect server; start one "
              "(prefect server start) and set PREFECT_API_URL=http://127.0.0.1:4200/api",
              file=sys.stderr)
        return 2
    from prefect import serve as prefect_serve

    params = {"workspace": str(Path(args.workspace).resolve()), "set_params": args.set_params}
    prefect_serve(deployment(name=args.name, cron=cron, parameters=params))
    return 0
