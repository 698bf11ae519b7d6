"""Data-parallel GAN training on CPU ranks (gloo), launched for real: torchrun's agent through
``train.nproc`` and the ``torchrun`` command itself. Each rank is its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from augment import data as D
from augment import distributed, stages
from augment.checkpoint import load_checkpoint, save_checkpoint
from augment.config import TrainConfig
from augment.errors import ConfigError, DataError, TrainingError
from augment.synthesis import synthesize
from augment.train import train_gan
from conftest import ROOT, scripted_quality
from test_signals import TAG, tagged, wait_gone

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

CFG = dict(epochs=4, batch_size=32, width=8, diffaug="translation", d_steps=2, lr_decay=0.5)


# Run in each rank's own process (spawned: module-level, picklable) ---------------------------
def _averaged_d_gradient(seed: int) -> list[float]:
    """D's gradient on this rank's contiguous half of a fixed batch of 8, averaged over ranks."""
    world = distributed.current()
    d, x, y = _critic_and_batch(seed)
    half = slice(4 * world.rank, 4 * world.rank + 4)
    d(x[half], y[half]).square().mean().backward()
    world.average_gradients(d)
    np.save(Path(os.environ["PROBE_OUT"]) / f"grad{world.rank}.npy", _flat_grad(d))
    return [world.rank]


def _fail_on_rank_1() -> None:
    if distributed.current().rank == 1:
        raise ValueError("a bug on rank 1")


def _patient(prepared: str) -> None:
    """train.patience 1, rank 0's checkpoint scores scripted to stall after epoch 2; each rank
    writes the epochs it trained."""
    from augment import selection

    world = distributed.current()
    data = D.load_prepared(prepared, splits=("train",))["train"]
    cfg = TrainConfig(**{**CFG, "epochs": 6}, patience=1, checkpoint_every=1)
    if world.rank > 0:
        gan = train_gan(data, cfg, seed=0, device="cpu", world=world)
    else:
        selection.quality_probe = scripted_quality([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
        gan, *_ = selection.train_checkpointed(
            data, cfg, seed=0, device="cpu", world=world, judge="scripted",
            partial=Path(os.environ["PROBE_OUT"]) / "partial.pt", start=None, log=lambda r: None)
    (Path(os.environ["PROBE_OUT"]) / f"done{world.rank}").write_text(str(gan.budget.done))


def _critic_and_batch(seed: int):
    from augment.models import build_discriminator

    torch.manual_seed(seed)
    d = build_discriminator({"preset": "dcgan", "image_shape": [1, 8, 8], "num_classes": 3,
                             "z_dim": 8, "width": 8})
    return d, torch.randn(8, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def _flat_grad(module) -> np.ndarray:
    return torch.cat([p.grad.flatten() for p in module.parameters()]).numpy()


def _train(prepared: str, out: str, *, seed: int, resume: str | None = None,
           save_at: int | None = None) -> list[dict]:
    """train_gan on this rank; writes the rank's final models, rank 0 a checkpoint at
    ``save_at``; returns the per-epoch metrics."""
    world = distributed.current()
    data = D.load_prepared(prepared, splits=("train",))["train"]
    history = []

    def on_epoch(epoch, metrics, gan):
        history.append(metrics)
        if epoch == save_at and world.rank == 0:
            save_checkpoint(Path(out) / "epoch.pt", gan.state(classes=data.classes, epoch=epoch,
                                                             history=[]))

    gan = train_gan(data, TrainConfig(**CFG), seed=seed, device="cpu", on_epoch=on_epoch,
                    resume=load_checkpoint(resume) if resume else None, world=world)
    torch.save({"ema": gan.ema.module.state_dict(), "g": gan.generator.state_dict(),
                "d": gan.discriminator.state_dict()}, Path(out) / f"rank{world.rank}.pt")
    return history


def _models(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[m][k], b[m][k]) for m in a for k in a[m])


# Tests --------------------------------------------------------------------------------------
def test_rank_seeds_differ_by_rank_and_epoch_and_repeat():
    seeds = {(e, r): distributed.rank_generator_seed(0, e, r) for e in (1, 2) for r in (0, 1)}
    assert len(set(seeds.values())) == 4
    assert distributed.rank_generator_seed(0, 2, 1) == seeds[(2, 1)]


def test_averaged_gradients_are_the_full_batch_gradient(tmp_path, monkeypatch):
    """2 ranks × 4 images, gradients averaged = one process on all 8 (D's minibatch-std groups
    kept to the same halves with parts=2). Fails if the ranks summed instead of averaging, or
    did not reduce at all."""
    monkeypatch.setenv("PROBE_OUT", str(tmp_path))
    distributed.launch(_averaged_d_gradient, 2, 5)
    d, x, y = _critic_and_batch(5)
    d(x, y, parts=2).square().mean().backward()
    full = _flat_grad(d)
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(tmp_path / f"grad{rank}.npy"), full, rtol=1e-5,
                                   atol=1e-7)


def test_two_ranks_stay_identical_resume_exactly_and_follow_the_single_process_curve(
        prepared, tmp_path):
    """Two gloo ranks at global batch 32 (16 each) against one process at 32, same seed."""
    straight, split, solo, other = (tmp_path / n for n in ("straight", "split", "solo", "other"))
    for folder in (straight, split, solo, other):
        folder.mkdir()
    curve2 = distributed.launch(_train, 2, str(prepared), str(straight), seed=0, save_at=2)
    # the ranks hold the same weights and buffers (spectral norm, BN statistics, EMA)
    assert _same(_models(straight / "rank0.pt"), _models(straight / "rank1.pt"))
    # resume from rank 0's epoch-2 checkpoint: every rank ends as in the uninterrupted run
    distributed.launch(_train, 2, str(prepared), str(split), seed=0,
                       resume=str(straight / "epoch.pt"))
    for rank in (0, 1):
        assert _same(_models(split / f"rank{rank}.pt"), _models(straight / f"rank{rank}.pt"))
    # the loss curve matches one process at the same global batch, within the spread between
    # two single-process seeds (the ranks draw other latents and normalise over 16, not 32)
    curve1 = _train(str(prepared), str(solo), seed=0)
    curve1b = _train(str(prepared), str(other), seed=1)
    gap = lambda a, b: np.mean([abs(x[k] - y[k]) for x, y in zip(a, b)  # noqa: E731
                                for k in ("d_loss", "g_loss")])
    assert gap(curve2, curve1) <= max(2 * gap(curve1b, curve1), 0.1), (curve2, curve1, curve1b)


def test_a_time_budget_on_two_ranks_follows_rank_0s_plan(prepared, params, tmp_path):
    """train.minutes with train.nproc 2: the ranks re-plan as one (a rank that ran another epoch
    count would hang in the next collective or fail); the settings record the count reached."""
    params["train"].update(nproc=2, epochs=1000, minutes=0.05, checkpoint_every=1000)
    out = tmp_path / "gan.pt"
    summary = stages.train.run(params, data=str(prepared), out=str(out), judge=None,
                               samples=str(tmp_path / "s.png"), logdir=str(tmp_path / "live"),
                               settings=str(tmp_path / "c.json"), resume_dir=str(tmp_path / "r"))
    used = json.loads((tmp_path / "c.json").read_text())
    assert 1 <= used["epochs"] == summary["epochs"] < 1000 and used["minutes"] == 0.05
    assert [h["epoch"] for h in load_checkpoint(out)["history"]] == list(
        range(1, used["epochs"] + 1))


def test_torchrun_command_runs_the_train_stage(prepared, judge, params, tmp_path):
    """``torchrun --nproc-per-node=2 -m augment.cli train``: the world size comes from torchrun."""
    params["train"].update(epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node=2", "-m", "augment.cli", "train",
         "--params", str(tmp_path / "params.yaml"), "--data", str(prepared),
         "--out", str(tmp_path / "gan.pt"), "--samples", str(tmp_path / "s.png"),
         "--logdir", str(tmp_path / "live"), "--judge", str(judge), "--settings",
         str(tmp_path / "c.json"), "--quality", str(tmp_path / "q.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "c.json").read_text())["nproc"] == 2
    assert load_checkpoint(tmp_path / "gan.pt")["epoch"] == 1


def test_early_stopping_on_rank_0s_scores_stops_every_rank(prepared, tmp_path, monkeypatch):
    """A rank that trained on past rank 0's stop would wait in the next all-reduce for a rank
    that has left (and fail)."""
    monkeypatch.setenv("PROBE_OUT", str(tmp_path))
    distributed.launch(_patient, 2, str(prepared))
    assert [(tmp_path / f"done{r}").read_text() for r in (0, 1)] == ["2", "2"]


def test_a_batch_that_does_not_split_over_the_ranks_is_refused(prepared, params, tmp_path):
    params["train"].update(nproc=3, batch_size=32)
    with pytest.raises(ConfigError, match=r"train.batch_size 32 does not split over 3 ranks.*"
                                          r"multiple of 3"):
        stages.train.run(params, data=str(prepared), out=str(tmp_path / "gan.pt"), judge=None)
    assert not (tmp_path / "gan.pt").exists()


def test_a_users_error_on_one_rank_ends_the_run_with_that_error(prepared, params, tmp_path):
    """Only rank 0 reads the judge: its error reaches the caller as itself; rank 1, waiting for
    rank 0, is stopped; nothing is written."""
    other = tmp_path / "judge.pt"
    params["prepare"]["classes"] = ["0", "1"]
    stages.prepare.run(params, out=str(tmp_path / "two"), metrics=str(tmp_path / "p.json"))
    stages.judge.run(params, data=str(tmp_path / "two"), out=str(other),
                     metrics=str(tmp_path / "j.json"))
    params["train"].update(nproc=2)
    t0 = time.monotonic()
    with pytest.raises(DataError, match="re-run the judge stage"):
        stages.train.run(params, data=str(prepared), out=str(tmp_path / "gan.pt"), judge=str(other),
                         logdir=str(tmp_path / "live"), resume_dir=str(tmp_path / "resume"))
    assert time.monotonic() - t0 < 120 and not (tmp_path / "gan.pt").exists()


def test_any_other_failure_becomes_a_training_error_naming_the_rank(capfd):
    with pytest.raises(TrainingError, match=r"training rank 1 failed \(exit code 1\): "
                                            r"ValueError: a bug on rank 1"):
        distributed.launch(_fail_on_rank_1, 2)
    assert "_fail_on_rank_1" in capfd.readouterr().err  # its traceback, for the bug report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_launching_process_leaves_no_rank(prepared, judge, params, tmp_path):
    params["train"].update(nproc=2, epochs=100_000, checkpoint_every=100_000)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    value = uuid.uuid4().hex
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "augment.cli", "train", "--params", str(tmp_path / "params.yaml"),
             "--data", str(prepared), "--out", str(tmp_path / "gan.pt"), "--judge", str(judge),
             "--logdir", str(tmp_path / "live")], cwd=ROOT, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, TAG: value, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while len(tagged(value)) < 3:  # the launcher and its two ranks
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    time.sleep(3)  # inside the training loop
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = wait_gone(value, 10)
    assert not left, f"left running: {[_cmdline(pid) for pid in left]}"


def _cmdline(pid: int) -> str:
    try:
        return f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid}: gone"


def test_the_stage_flow_launches_its_ranks_and_writes_a_checkpoint_that_synthesizes(
        prepared, judge, params, tmp_path, prefect_api):
    """``python -m flows train`` (what dvc.yaml runs) with train.nproc 2: the ranks are spawned
    from inside the Prefect flow, re-importing ``flows.__main__`` as their main module."""
    params["train"].update(nproc=2, epochs=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "gan.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "flows", "train", "--params", str(tmp_path / "params.yaml"),
         "--data", str(prepared), "--judge", str(judge), "--out", str(out),
         "--samples", str(tmp_path / "s.png"), "--logdir", str(tmp_path / "live"),
         "--settings", str(tmp_path / "c.json"), "--quality", str(tmp_path / "q.json"),
         "--resume-dir", str(tmp_path / "resume")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "c.json").read_text())["nproc"] == 2
    assert [h["epoch"] for h in load_checkpoint(out)["history"]] == [1, 2]
    images, labels = synthesize(out, 3, seed=0)
    assert images.shape == (30, 1, 8, 8) and sorted(set(labels.tolist())) == list(range(10))
    assert not list((tmp_path / "resume").glob("*.pt"))  # finished: nothing left to resume
