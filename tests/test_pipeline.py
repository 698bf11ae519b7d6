"""The real thing: ``dvc repro`` of this repository's dvc.yaml in a temporary git repository,
with tiny params. Checks outputs, metrics, no-op re-runs, bitwise reproducibility, and that an
experiment on a train param re-runs only train and what follows it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from conftest import make_dvc_repo, run_checked as _run


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    return root, make_dvc_repo(root)


def _dvc(repo_env, *args) -> str:
    repo, env = repo_env
    return _run([str(Path(sys.executable).parent / "dvc"), *args], repo, env)


def _lock_hashes(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {(stage, out["path"]): out.get("md5") for stage, body in lock["stages"].items()
            for out in body.get("outs", [])}


def test_dvc_repro_end_to_end(repo):
    root, env = repo
    # What `make repro` runs: dvc repro with one Prefect server shared by the stage processes.
    out = _run([sys.executable, "-m", "flows", "repro"], root, env)
    for stage in ("prepare", "judge", "train", "synthesize", "evaluate"):
        assert f"Running stage '{stage}'" in out
    metrics = json.loads((root / "metrics/evaluate.json").read_text())
    for variant in ("real", "real+oversample", "real+classic", "real+synthetic",
                    "real+synthetic+classic", "synthetic"):
        assert {"balanced_accuracy", "balanced_accuracy_lo", "minority_recall_hi",
                "macro_f1"} <= set(metrics[variant])
    assert {"balanced_accuracy", "balanced_accuracy_p"} <= set(metrics["vs_real:real+synthetic"])
    report = (root / "reports/evaluate.md").read_text()
    assert metrics["verdict"] in report and "| `real+synthetic+classic` |" in report
    synth = json.loads((root / "metrics/synthesize.json").read_text())
    manifest = (root / "data/synthetic/manifest.csv").read_text().splitlines()
    assert len(manifest) == synth["total"] + 1 and manifest[0] == "path,label,class_name,source"
    for path in ("models/gan.pt", "plots/train/samples.png", "plots/evaluate/per_class_recall.png",
                 "plots/evaluate/confusion/real_synthetic_classic.csv", "dvclive/train/metrics.json",
                 "models/judge.pt", "plots/evaluate/balanced_accuracy.png", "reports/samples.png"):
        assert (root / path).is_file(), path
    assert "up to date" in _dvc(repo, "status")
    shown = _dvc(repo, "metrics", "show", "metrics/evaluate.json")
    assert "real+synthetic.balanced_accuracy" in shown
    plots = json.loads(_dvc(repo, "plots", "show", "--json"))
    assert {"plots/evaluate/confusion/real_synthetic.csv", "plots/evaluate/summary.csv",
            "plots/evaluate/balanced_accuracy.png"} <= set(plots["data"]), sorted(plots["data"])


def test_repro_again_is_a_no_op(repo):
    out = _dvc(repo, "repro")
    assert "Running stage" not in out and out.count("didn't change, skipping") == 5


def test_forced_rerun_is_bitwise_identical(repo):
    root, _ = repo
    before = _lock_hashes(root)
    metrics_before = (root / "metrics/evaluate.json").read_bytes()
    _dvc(repo, "repro", "-f")
    assert _lock_hashes(root) == before
    assert (root / "metrics/evaluate.json").read_bytes() == metrics_before
    assert "up to date" in _dvc(repo, "status")


def test_experiment_on_train_param_reruns_only_downstream(repo):
    root, env = repo
    _run(["git", "add", "-A"], root, env)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"],
         root, env)
    out = _dvc(repo, "exp", "run", "-S", "train.epochs=1")
    assert "Stage 'prepare' didn't change, skipping" in out
    assert "Stage 'judge' didn't change, skipping" in out
    for stage in ("train", "synthesize", "evaluate"):
        assert f"Running stage '{stage}'" in out
    diff = _dvc(repo, "params", "diff")
    assert "train.epochs" in diff
