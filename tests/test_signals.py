"""Stopping ``python -m flows repro`` stops everything it started: real processes, real signals.

Each run carries a unique environment variable; every process it starts (dvc, the stage, the
Prefect server) inherits it, so ``/proc/*/environ`` finds whatever is left, orphans included.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import make_dvc_repo, run_checked, tiny_params

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
TAG = "AUGMENT_SIGNAL_TEST"


def tagged(value: str) -> list[int]:
    """PIDs of live processes whose environment has ``TAG=value``."""
    needle = f"{TAG}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(value: str, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := tagged(value)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A pipeline whose train stage runs for minutes; prepare and judge already done (by the
    plain CLI, recorded in dvc.lock by ``dvc commit``: no Prefect server to start for them)."""
    params = tiny_params()
    params["train"].update(epochs=100_000, checkpoint_every=100_000)
    root = tmp_path_factory.mktemp("signals")
    env = make_dvc_repo(root, params)
    bin_dir = Path(sys.executable).parent
    for cmd in (["augment", "prepare"], ["augment", "judge"],
                ["dvc", "commit", "-f", "prepare", "judge"]):
        run_checked([str(bin_dir / cmd[0]), *cmd[1:]], root, env)
    return root, env


def start_repro(repo, log: Path, shell: str | None = None) -> tuple[subprocess.Popen, str]:
    """``python -m flows repro`` as a terminal would run it (its own process group), waiting
    until the train stage computes. DVC runs stage commands with ``$SHELL -c`` (``/bin/sh``
    when unset, as under CI); ``shell`` sets it."""
    root, env = repo
    value = uuid.uuid4().hex
    env = {**{k: v for k, v in env.items() if k != "PREFECT_API_URL"}, TAG: value}  # its own
    if shell is not None:
        env["SHELL"] = shell
    epoch_logged = root / "dvclive" / "train" / "metrics.json"  # after every epoch
    shutil.rmtree(epoch_logged.parent, ignore_errors=True)  # an earlier test's
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flows", "repro"], cwd=root, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240
    while not epoch_logged.exists():  # past imports and Prefect's start: in the training loop
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    assert "Running stage 'train'" in log.read_text() and proc.poll() is None, log.read_text()
    assert len(tagged(value)) >= 3, "expected flows repro, the server, dvc and the stage"
    return proc, value


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_leaves_no_process_after_10s(repo, tmp_path, how):
    proc, value = start_repro(repo, tmp_path / "log")
    if how == "ctrl-c":  # the terminal signals the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    left = wait_gone(value, timeout=10)
    assert not left, f"still running 10 s after {how}: {left}"
    assert proc.wait(timeout=5) != 0
    assert not (repo[0] / "models/gan.pt").exists()


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_kill_9_of_parent_leaves_no_helper(repo, tmp_path, shell):
    """Also when the stage's shell (dash, which does not exec a lone command) sits between
    dvc and the stage: the kernel's parent-death signal reaches only direct children."""
    if not Path(shell).exists():
        pytest.skip(f"no {shell}")
    proc, value = start_repro(repo, tmp_path / "log", shell)
    proc.kill()
    proc.wait()
    left = wait_gone(value, timeout=10)
    assert not left, f"still running 10 s after kill -9 of python -m flows repro: {left}"
