"""The real thing: ``dvc repro`` of this repository's dvc.yaml in a temporary git repository,
with tiny params. Checks outputs, metrics, no-op re-runs, bitwise reproducibility, that a stage
imports no code dvc.yaml does not list, that editing a module reruns the stages that import it,
and that an experiment on a train param re-runs only train and what follows it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from augment.config import EvaluateConfig
from conftest import make_dvc_repo, run_checked as _run


@pytest.fixture(scope="module")
def repo(tmp_path_factory, prefect_api):
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
    for variant in EvaluateConfig().variants:
        assert {"balanced_accuracy", "balanced_accuracy_lo", "minority_recall_hi",
                "macro_f1"} <= set(metrics[variant])
    assert {"balanced_accuracy", "balanced_accuracy_p"} <= set(metrics["vs_real:real+synthetic"])
    assert metrics["classic_policy"] == "affine,elastic,noise"  # grey digits: the digit policy
    report = (root / "reports/evaluate.md").read_text()
    assert metrics["verdict"] in report and "| `real+synthetic+classic` |" in report
    # the default GAN recipe: its own synthetic weight, a portable confusion-table name
    assert "| `real+synthetic*0.1+posthoc+classic` |" in report
    assert metrics["real+synthetic*0.1+posthoc+classic"]["prior_ratio"] > 1
    synth = json.loads((root / "metrics/synthesize.json").read_text())
    manifest = (root / "data/synthetic/manifest.csv").read_text().splitlines()
    assert len(manifest) == synth["total"] + 1 and manifest[0] == "path,label,class_name,source"
    for path in ("models/gan.pt", "plots/train/samples.png", "plots/evaluate/per_class_recall.png",
                 "plots/evaluate/confusion/real_synthetic_classic.csv", "dvclive/train/metrics.json",
                 "plots/evaluate/confusion/real_synthetic-w0.1_posthoc_classic.csv",
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


FORCED: dict[str, str] = {}  # the output of the forced rerun, with import times


def test_forced_rerun_is_bitwise_identical(repo):
    root, env = repo
    before = _lock_hashes(root)
    metrics_before = (root / "metrics/evaluate.json").read_bytes()
    # every Python process prints what it imports (stderr, kept in order with stdout): read by
    # the next test
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "-f"], cwd=root,
                          env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:]
    FORCED["out"] = proc.stdout
    assert _lock_hashes(root) == before
    assert (root / "metrics/evaluate.json").read_bytes() == metrics_before
    assert "up to date" in _dvc(repo, "status")


def test_stages_import_no_code_missing_from_their_deps(repo):
    """What each stage process really imported (python -X importtime) ⊆ its dvc.yaml deps."""
    out = FORCED.get("out") or pytest.skip("needs the forced rerun above")
    deps = yaml.safe_load((repo[0] / "dvc.yaml").read_text())["stages"]
    parts = re.split(r"Running stage '(\w+)'", out)
    assert [parts[i] for i in range(1, len(parts), 2)] == list(deps)
    for stage, text in zip(parts[1::2], parts[2::2]):
        modules = set(re.findall(r"^import time:.*\|\s+((?:augment|flows)(?:\.\w+)*)\s*$",
                                 text, re.M))
        # flows.__main__ runs as __main__, and the flow loads its stage's module with importlib,
        # which -X importtime does not list (only the imports that module makes): no other
        # stage's module is loaded, and what the stage's module imports is seen
        assert not {m for m in modules if m.startswith("augment.stages.")}, stage
        assert "flows.__main__" not in modules and "augment.config" in modules
        files = {m.replace(".", "/") + (".py" if (repo[0] / (m.replace(".", "/") + ".py")).is_file()
                                        else "/__init__.py") for m in modules}
        assert files <= set(deps[stage]["deps"]), (stage, sorted(files - set(deps[stage]["deps"])))


# an edit to the module reruns these stages, and leaves the others up to date
# (prepare's outputs feed every later stage: those rerun once prepare has, if its outputs change)
EDITS = {"augment/sources.py": {"prepare"}, "augment/judge.py": {"judge", "train", "synthesize"},
         "augment/runtime.py": {"prepare", "judge", "train", "synthesize", "evaluate"},
         "augment/losses.py": {"train"}, "augment/evaluate.py": {"evaluate"},
         "augment/mixing.py": {"evaluate"}, "augment/longtail.py": {"evaluate"},
         "augment/classic.py": {"evaluate"},
         "augment/stages/train.py": {"train"}, "flows/evaluate.py": {"evaluate"}}


@pytest.mark.parametrize("module", EDITS)
def test_editing_an_imported_module_makes_its_stages_stale(repo, module):
    root, _ = repo
    path = root / module
    original = path.read_text()
    path.write_text(original + "\n\ndef _edited():\n    return 1\n")
    try:
        status = json.loads(_dvc(repo, "status", "--json"))
    finally:
        path.write_text(original)
    assert set(status) == EDITS[module], status
    for stage in EDITS[module]:
        assert {"changed deps": {module: "modified"}} in status[stage], status[stage]
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
