"""The fault suite: real processes, real signals, a real full disk.

- SIGKILL of `dvc repro` and its stage during train → the next `dvc repro` resumes from the last
  checkpoint and ends with the outputs of a clean run, bit for bit.
- SIGKILL during synthesize (mid-write) → the next `dvc repro` completes with the same outputs,
  and no temporary files are left.
- A diverging config → the train stage exits 2 naming the problem; no models/gan.pt.
- A full disk while writing → one-line error, exit 2, nothing partial written.
- Two `python -m flows repro` in one workspace → DVC refuses the second; we say what to do.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, make_dvc_repo, run_checked, tiny_params

DVC = str(Path(sys.executable).with_name("dvc"))
AUGMENT = str(Path(sys.executable).with_name("augment"))
pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
              pytest.mark.usefixtures("prefect_api")]  # one Prefect server for the module


def repro(root: Path, env: dict, *args: str) -> str:
    """``python -m flows repro``, stage logs at INFO (the suite's default is WARNING)."""
    return run_checked([sys.executable, "-m", "flows", "repro", *args], root,
                       {**env, "PREFECT_LOGGING_LEVEL": "INFO"})


def fault_params() -> dict:
    params = tiny_params()
    params["train"].update(epochs=16, checkpoint_every=4)  # long enough to be killed mid-run
    params["synthesize"]["multiple"] = 10.0  # thousands of PNGs: a write long enough to hit
    params["evaluate"].update(seeds=1, epochs=1, variants=["real", "real+synthetic"])
    return params


@pytest.fixture(scope="module")
def repo(tmp_path_factory, prefect_api):
    root = tmp_path_factory.mktemp("faults")
    env = make_dvc_repo(root, fault_params())
    repro(root, env, "judge")
    return root, env


def stage_pids(stage: str, root: Path) -> list[int]:
    """PIDs of `python -m flows <stage>` processes running in ``root``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cmd[-3:-1] == [b"flows", stage.encode()] and cwd == str(root):
            found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, f"exited before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def outs(root: Path) -> dict:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {(stage, o["path"]): o.get("md5") for stage, body in lock["stages"].items()
            for o in body.get("outs", [])}


def test_sigkill_during_train_resumes_and_ends_as_a_clean_run(repo, tmp_path):
    root, env = repo
    log = (tmp_path / "log").open("w")
    dvc = subprocess.Popen([DVC, "repro"], cwd=root, env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    partial = root / "models" / "train-resume"
    wait_for(lambda: list(partial.glob("*.pt")), 300, "a checkpoint", dvc)
    time.sleep(1.0)  # mid-run, between checkpoints
    os.killpg(dvc.pid, signal.SIGKILL)  # power loss: dvc and the stage at once
    dvc.wait()
    wait_for(lambda: not stage_pids("train", root), 10, "the stage to die")
    assert not (root / "models" / "gan.pt").exists()
    out = repro(root, env)
    assert "resumed from epoch" in out, out
    resumed = outs(root)
    assert not list(partial.glob("*.pt"))  # finished: nothing left to resume
    repro(root, env, "-f", "-s", "train")  # a clean run from scratch
    clean = outs(root)
    assert {k: v for k, v in clean.items() if k[0] == "train"} == \
        {k: v for k, v in resumed.items() if k[0] == "train"}
    assert "up to date" in run_checked([DVC, "status"], root, env)


def test_sigkill_during_synthesize_write_then_repro_completes_the_same(repo, tmp_path):
    root, env = repo
    repro(root, env)
    before = outs(root)
    dvc = subprocess.Popen([DVC, "repro", "-f", "-s", "synthesize"], cwd=root, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    temp = lambda: list((root / "data").glob(".synthetic.augment-tmp-*"))  # noqa: E731
    wait_for(temp, 300, "synthesize to start writing", dvc)
    os.killpg(dvc.pid, signal.SIGKILL)
    dvc.wait()
    assert temp(), "killed after the write finished: the test did not hit the write"
    repro(root, env)  # DVC may restore the outputs from its run cache: nothing is written
    assert outs(root) == before
    assert temp()[0].name not in run_checked(["git", "status", "--porcelain", "--ignored=no"],
                                             root, env)
    repro(root, env, "-f", "-s", "synthesize")  # the next write there removes the leftover
    assert not temp(), "a killed write's temporary folder was left behind"
    assert outs(root) == before


def test_diverging_config_exits_2_and_leaves_no_model(repo):
    """In this workspace (prepare and judge stay up to date), params.yaml put back afterwards:
    the next ``dvc repro train`` restores the model from DVC's run cache."""
    root, env = repo
    params = fault_params()
    params["train"].update(lr_g=1.0, lr_d=1.0, epochs=6, checkpoint_every=2,
                           min_judge_ratio=0.5, min_diversity=0.05)
    original = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        proc = subprocess.run([DVC, "repro", "train"], cwd=root, env=env, capture_output=True,
                              text=True, timeout=900)
    finally:
        (root / "params.yaml").write_text(original)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "exited with 2" in output, output[-3000:]  # what the retrain flow reads
    assert "no checkpoint passed the quality guards" in output and "train.lr_g" in output
    assert "Running stage 'judge'" not in output
    assert not (root / "models" / "gan.pt").exists()


def _mount_tiny_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    return proc.returncode == 0


@pytest.mark.parametrize("stage", ["train", "synthesize"])
def test_full_disk_is_one_line_exit_2_and_nothing_partial(repo, tmp_path, stage):
    root, env = repo
    run_checked([DVC, "repro", "train"], root, env)  # a model to synthesize from
    full = tmp_path / "full"
    if not _mount_tiny_tmpfs(full, "64k"):
        pytest.skip("cannot mount a size-limited tmpfs here (see the injected-ENOSPC test)")
    try:
        args = {"train": ["--out", f"{full}/gan.pt", "--settings", f"{full}/s.json",
                          "--quality", f"{tmp_path}/q.json", "--samples", f"{tmp_path}/s.png",
                          "--logdir", f"{tmp_path}/live", "--resume-dir", f"{full}/resume"],
                "synthesize": ["--out", f"{full}/synthetic", "--metrics", f"{full}/s.json"]}
        proc = subprocess.run([AUGMENT, stage, *args[stage]], cwd=root, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 2, proc.stderr[-3000:]
        # synthesize sees before drawing that its samples cannot fit; a disk that fills while
        # it writes: the injected-ENOSPC test below
        said = {"train": "No space left on device", "synthesize": f"free in {full})"}[stage]
        assert proc.stderr.count("\n") == 1 and said in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
        left = [p for p in full.rglob("*") if p.is_file()]
        assert not left, f"partial output left on the full disk: {left}"
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_injected_enospc_is_one_line_exit_2_and_nothing_partial(repo, tmp_path, monkeypatch,
                                                                 capsys):
    """Where no tmpfs can be mounted: the same failure, injected into the array writer."""
    import numpy as np

    from augment.cli import main

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    root, env = repo
    run_checked([DVC, "repro", "train"], root, env)
    monkeypatch.setattr(np, "save", full)
    monkeypatch.chdir(root)
    out = tmp_path / "synthetic"
    assert main(["synthesize", "--out", str(out), "--metrics", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_second_repro_in_the_same_workspace_is_refused_with_a_hint(repo, tmp_path):
    root, env = repo
    first = subprocess.Popen([sys.executable, "-m", "flows", "repro", "-f", "-s", "train"],
                             cwd=root, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: stage_pids("train", root), 300, "the first run's train stage", first)
        second = subprocess.run([sys.executable, "-m", "flows", "repro"], cwd=root, env=env,
                                capture_output=True, text=True, timeout=600)
        assert second.returncode != 0
        assert "another DVC command holds this workspace" in second.stderr, second.stderr[-3000:]
        assert "dvc exp run --queue" in second.stderr
    finally:
        assert first.wait(timeout=600) == 0  # the first run was not disturbed
    assert "up to date" in run_checked([DVC, "status", "train"], root, env)
    assert json.loads((root / "metrics" / "quality.json").read_text())["guards"]["passed"]
