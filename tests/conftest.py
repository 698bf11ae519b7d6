"""Shared fixtures: tiny params, a prepared digits split, Prefect isolated in a temp home."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MNIST_ROOT = ROOT.parent / "shared" / "data"

# Prefect keeps its database under PREFECT_HOME: one throw-away home per test session.
if "PREFECT_HOME" not in os.environ:  # removed when the process that made it (pytest) exits
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="augment-prefect-")
    atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # one database per pytest-xdist worker: the
    # workers inherit one home, and two servers' first starts race on its migrations
    os.environ["PREFECT_HOME"] = os.path.join(os.environ["PREFECT_HOME"], worker)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# An ephemeral server's start (a uvicorn process importing Prefect) took over the default 20 s on
# the 2-core CI machine under a parallel job; the tests test flows, not start-up speed.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("DO_NOT_TRACK", "1")


def tiny_params() -> dict:
    """The repository's params.yaml with budgets cut to seconds."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(max_per_class=40, imbalance_ratio=1.0)  # 40 per class: no tail to cut
    params["judge"].update(epochs=2, width=8)
    params["train"].update(epochs=2, batch_size=32, width=8, checkpoint_every=1, grid_per_class=2,
                           min_judge_ratio=0.0, min_diversity=0.0)  # 2 epochs: no quality yet
    params["evaluate"].update(epochs=2, width=8, seeds=2)
    return params


@pytest.fixture
def params() -> dict:
    return copy.deepcopy(tiny_params())


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Path:
    """A prepared digits directory (40 images per class before splitting)."""
    from augment import stages

    out = tmp_path_factory.mktemp("prepared") / "prepared"
    stages.prepare.run(tiny_params(), out=str(out), metrics=str(out.parent / "prepare.json"))
    return out


@pytest.fixture(scope="session")
def judge(prepared, tmp_path_factory) -> Path:
    """A judge classifier fit for 2 tiny epochs on ``prepared``."""
    from augment import stages

    d = tmp_path_factory.mktemp("judge")
    stages.judge.run(tiny_params(), data=str(prepared), out=str(d / "judge.pt"),
                     metrics=str(d / "judge.json"))
    return d / "judge.pt"


@pytest.fixture(scope="session")
def checkpoint(prepared, judge, tmp_path_factory) -> Path:
    """A GAN checkpoint trained for 2 tiny epochs on ``prepared`` (quality logged by ``judge``)."""
    from augment import stages

    d = tmp_path_factory.mktemp("train")
    stages.train.run(tiny_params(), data=str(prepared), out=str(d / "gan.pt"),
                     samples=str(d / "samples.png"), logdir=str(d / "dvclive"),
                     judge=str(judge), quality=str(d / "quality.json"),
                     settings=str(d / "train_config.json"))
    return d / "gan.pt"


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect server per test process (each pytest-xdist worker), started on first use and
    kept to the end of the session. ``PREFECT_API_URL`` is set meanwhile, in this process and in
    every env made from it: the flows run here, each ``python -m flows <stage>`` process and the
    deployment and cluster tests connect to it instead of starting a server of their own (a
    start took ~19 s in a test's set-up on 2 cores). The tests of ``flows repro``'s own server
    (test_signals) take ``PREFECT_API_URL`` out of their env."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.server import shared_server

    with shared_server(timeout=120) as url, temporary_settings({PREFECT_API_URL: url}):
        yield url


def scripted_quality(fids):
    """A stand-in for :func:`augment.selection.quality_probe` whose checkpoint scores follow
    ``fids`` (domain FID), one per checkpoint; every other score passes the guards."""
    scores = iter(fids)
    return lambda *args, **kwargs: (lambda generator: {
        "fid": next(scores), "judge_accuracy": 1.0, "judge_balanced_accuracy": 1.0,
        "diversity_min": 1.0, "diversity": {},
        "fid_class_mean": 0.0}, 1.0)


def run_checked(cmd: list[str], cwd: Path, env: dict, timeout: float = 900) -> str:
    """Run ``cmd``; fail the test with its output if it exits non-zero. Returns the output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def make_dvc_repo(repo: Path, params: dict | None = None) -> dict:
    """A git repo at ``repo`` with this project's pipeline and tiny params; returns its env."""
    for item in ["augment", "flows", "dvc.yaml", ".dvc/config", ".dvcignore", ".gitignore"]:
        src, dst = ROOT / item, repo / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    (repo / "params.yaml").write_text(yaml.safe_dump(params or tiny_params(), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(repo), "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        run_checked(cmd, repo, env)
    return env


# The files that run longest, longest first: `make test`'s two pytest-xdist workers (--dist
# loadfile --no-loadscope-reorder) take files in this order and end together, instead of one
# running the last long file alone.
LONGEST_FIRST = ("test_faults.py", "test_pipeline.py", "test_sweep.py", "test_deploy.py",
                 "test_distributed.py", "test_signals.py", "test_evaluate.py", "test_cluster.py",
                 "test_examples.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept


def fabricate_images(n_per_class: list[int], *, size: int = 8, channels: int = 1, seed: int = 0):
    """An ImageSet of random uint8 images with the given class counts."""
    from augment.data import ImageSet

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(n_per_class)), n_per_class)
    images = rng.integers(0, 256, (len(labels), channels, size, size), dtype=np.uint8)
    return ImageSet(images, labels.astype(np.int64), tuple(f"c{i}" for i in range(len(n_per_class))))

# Prefect logs "Stopping temporary server" at interpreter exit, after pytest closed its capture.
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
