"""train.minutes: a wall-clock budget that plans the epochs, and a run equal to a fixed-epoch one."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from augment import budget as B
from augment.budget import Budget, schedule
from augment.config import TrainConfig
from augment.distributed import Solo
from augment.train import train_gan
from conftest import fabricate_images, scripted_quality, tiny_params


class Clock:
    """A stand-in for time.perf_counter: epochs take what the test says."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(cfg: TrainConfig, durations, monkeypatch, budget: Budget | None = None):
    """Drive a Budget through epochs of the given durations; returns (budget, schedules ran)."""
    clock = Clock()
    monkeypatch.setattr(B.time, "perf_counter", clock)
    budget = budget or Budget(cfg)
    budget.start()
    ran = []
    for epoch, seconds in zip(budget, durations):
        ran.append((epoch, budget.schedule(epoch)))
        clock.now += seconds
        budget.end_epoch()
    return budget, ran


def test_a_fixed_count_never_replans(monkeypatch):
    budget, ran = run(TrainConfig(epochs=7, lr_decay=0.3), [100.0] * 20, monkeypatch)
    assert budget.epochs == budget.done == len(ran) == 7


def test_the_plan_fills_the_budget_and_ends_it_with_the_decay(monkeypatch):
    cfg = TrainConfig(minutes=1.0, lr_decay=0.3)
    budget, ran = run(cfg, [5.0] * 100, monkeypatch)
    assert budget.done == 12 and budget.spent == pytest.approx(60.0)  # 12 × 5 s = the minute
    assert ran[-1][1] < 1 and ran[0][1] == 1  # the rate fell towards the end only
    # the same schedule, epoch by epoch, as a run told epochs=12: its bytes will match
    assert ran == [(e, schedule(e, 12, cfg)) for e in range(1, 13)]


def test_slower_epochs_shrink_the_plan_but_keep_the_schedule_already_run(monkeypatch):
    cfg = TrainConfig(minutes=2.0, lr_decay=0.3)
    durations = [4.0] * 10 + [6.0] * 100  # the other core gets busy after 10 epochs
    budget, ran = run(cfg, durations, monkeypatch)
    assert 20 <= budget.done < 30  # 30 planned at the full speed
    assert budget.spent == pytest.approx(120, rel=0.05)
    assert ran == [(e, schedule(e, budget.done, cfg)) for e in range(1, budget.done + 1)]


@pytest.mark.parametrize("at", range(40, 60, 2))
@pytest.mark.parametrize("stalled", [1, 2])
def test_one_or_two_stalled_epochs_near_the_decay_do_not_cut_the_run_short(monkeypatch, at,
                                                                           stalled):
    """A few seconds of another process, just before the decay fixes the plan, must not make
    the plan: with the mean of the last three epochs, one 12-s epoch among 7-s ones at epoch
    54 of ~85 ended a 10-minute run at 0.93 of its budget (an MNIST run ended at 0.913)."""
    cfg = TrainConfig(minutes=10.0, lr_decay=0.3)
    durations = [7.0] * 200
    durations[at:at + stalled] = [12.0] * stalled
    budget, ran = run(cfg, durations, monkeypatch)
    assert budget.spent == pytest.approx(600, rel=0.05)
    assert ran == [(e, schedule(e, budget.done, cfg)) for e in range(1, budget.done + 1)]


def test_a_slow_start_plans_short_and_the_plan_grows_when_epochs_speed_up(monkeypatch):
    cfg = TrainConfig(minutes=1.0, lr_decay=0.3)
    budget, ran = run(cfg, [30.0, 3.0] + [3.0] * 100, monkeypatch)  # a busy first epoch
    assert budget.done > 2 and budget.spent == pytest.approx(60, rel=0.05)
    assert ran == [(e, schedule(e, budget.done, cfg)) for e in range(1, budget.done + 1)]


def test_resume_counts_the_work_done_not_the_time_since_the_restart(monkeypatch):
    cfg = TrainConfig(minutes=1.0, lr_decay=0.3)
    first, _ = run(cfg, [5.0] * 4, monkeypatch)  # stopped after 4 epochs, 20 s spent
    state = {"epoch": 4, "budget": first.state()}
    resumed = Budget.resume(cfg, state)
    assert (resumed.done, resumed.spent, resumed.epochs) == (4, 20.0, 12)
    done, _ = run(cfg, [5.0] * 100, monkeypatch, budget=resumed)
    assert done.done == 12 and done.spent == pytest.approx(60.0)
    fixed = Budget.resume(TrainConfig(epochs=9), state)  # a fixed count ignores a saved plan
    assert (fixed.epochs, fixed.done) == (9, 4)


def test_a_budget_run_equals_a_run_of_the_epochs_it_reached():
    data = fabricate_images([20, 20, 20])
    cfg = TrainConfig(minutes=0.04, width=8, batch_size=16, device="cpu")  # ~2.4 s
    timed = train_gan(data, cfg, seed=0, device="cpu")
    reached = timed.budget.done
    assert reached >= 2  # a few epochs of tiny data fit in 2.4 s
    fixed = train_gan(data, TrainConfig(epochs=reached, width=8, batch_size=16, device="cpu"),
                      seed=0, device="cpu")
    for name, tensor in timed.ema.module.state_dict().items():
        assert torch.equal(tensor, fixed.ema.module.state_dict()[name]), name


def test_the_train_stage_records_the_epochs_a_budget_reached(prepared, tmp_path):
    from augment import stages

    params = tiny_params()
    params["train"].update(epochs=1000, minutes=0.05, checkpoint_every=1000)

    def train(p, d):
        return stages.train.run(p, data=str(prepared), out=str(d / "gan.pt"),
                                samples=str(d / "samples.png"), logdir=str(d / "dvclive"),
                                judge=None, settings=str(d / "train_config.json"))

    out = train(params, tmp_path / "timed")
    used = json.loads((tmp_path / "timed" / "train_config.json").read_text())
    assert used["minutes"] == 0.05 and used["epochs"] == out["epochs"] < 1000
    again = {**params, "train": {**params["train"], "minutes": None, "epochs": used["epochs"]}}
    train(again, tmp_path / "fixed")
    assert (tmp_path / "timed" / "samples.png").read_bytes() == \
        (tmp_path / "fixed" / "samples.png").read_bytes()
    saved = torch.load(tmp_path / "timed" / "gan.pt", weights_only=True)
    assert saved["epoch"] == used["epochs"] and saved["budget"]["epochs"] == used["epochs"]


# ------------------------------------------------------------------------- early stopping
@pytest.mark.parametrize("fids, patience, stop", [
    ([0.5, 0.4, 0.45, 0.46], 2, True),  # two checkpoints above the best before them
    ([0.5, 0.4, 0.45, 0.39], 2, False),  # the last one improved
    ([0.5, 0.4, 0.4], 1, True),  # equal is not better
    ([0.5, 0.6], 2, False),  # too few checkpoints to tell
    ([0.5, 0.6, 0.7], None, False),  # off
])
def test_stalled_when_the_fid_has_not_improved_for_patience_checkpoints(fids, patience, stop):
    from augment.selection import stalled

    history = [{"epoch": 2 * i + 1, "d_loss": 1.0} for i in range(len(fids))]  # between them
    history += [{"epoch": 2 * i + 2, "fid": f} for i, f in enumerate(fids)]
    history.sort(key=lambda h: h["epoch"])
    assert stalled(history, patience) is stop


def _scripted(monkeypatch, fids):
    from augment import selection

    monkeypatch.setattr(selection, "quality_probe", scripted_quality(fids))


def _checkpointed(cfg, partial, start=None):
    from augment.selection import train_checkpointed

    logged = []
    data = fabricate_images([24, 24], size=8)
    gan, history, best = train_checkpointed(data, cfg, seed=0, device="cpu", world=Solo(),
                                            judge="scripted", partial=partial, start=start,
                                            log=logged.append)
    return gan, history, best, logged


def test_patience_ends_the_run_as_a_prefix_of_the_full_run_and_resumes_stopped(
        monkeypatch, tmp_path):
    from augment.checkpoint import load_checkpoint

    fids = [0.5, 0.4, 0.45, 0.46, 0.3, 0.2]
    cfg = TrainConfig(epochs=6, batch_size=16, width=8, checkpoint_every=1)
    _scripted(monkeypatch, fids)
    _, _, _, full = _checkpointed(cfg, tmp_path / "full.pt")
    _scripted(monkeypatch, fids)
    patient = dataclasses.replace(cfg, patience=2)
    gan, history, best, logged = _checkpointed(patient, tmp_path / "patient.pt")
    assert gan.budget.done == 4 and [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert best["epoch"] == 2  # the best checkpoint is kept
    assert logged == full[:4]  # the same epochs, loss for loss, as the run it cut short
    # killed after the stop, before the stage wrote its outputs: the resume trains no more
    start = load_checkpoint(tmp_path / "patient.pt")
    assert start["epoch"] == 4 and start["budget"] == {"stopped": True}
    gan, history, best, logged = _checkpointed(patient, tmp_path / "again.pt", start=start)
    assert gan.budget.done == 4 and logged == [] and best["epoch"] == 2
    # with patience off, the same checkpoint continues (``--resume`` to train on)
    _scripted(monkeypatch, fids[4:])
    gan, *_ = _checkpointed(cfg, tmp_path / "on.pt", start=load_checkpoint(tmp_path / "patient.pt"))
    assert gan.budget.done == 6
