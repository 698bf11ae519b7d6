"""How many epochs a GAN run gets: ``train.epochs``, or as many as fit in ``train.minutes``.

A time budget is the training loop's time: set-up and the train stage's checkpoint scoring
(every ``checkpoint_every`` epochs and the last) come on top. After every epoch the run
re-plans its epoch count, ``epochs = done + round(seconds left / pace)``, the count that ends
nearest the budget, the pace being the median time of the last five epochs: not the mean of all
(another job may have started or stopped on the machine: three epochs at the new pace move the
median), nor a mean of the last few, which one stalled epoch (a few seconds of another process)
could make the plan that the decay then fixes. A plan may change only while it
leaves every epoch already run with the schedule it ran (the learning-rate decay over the last
``lr_decay`` of the epochs): so once the decay has begun the
plan is fixed, and the run is the same, weight for weight, as one with ``train.epochs`` set to
the count it reached (the train stage records it). The spent seconds travel in the
checkpoint, so a resumed run counts the work done, not the time since its last start."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from .config import TrainConfig

UNPLANNED = 10**6  # a time budget's plan before its first epoch has been timed
RECENT = 5  # epochs whose median time is the pace the plan assumes


def lr_factor(epoch: int, *, epochs: int, decay: float) -> float:
    """Learning-rate multiplier for (1-based) ``epoch``: 1, then a linear fall over the last
    ``decay`` fraction of ``epochs`` (never reaching 0). Stateless, so resuming needs no
    scheduler state."""
    remaining = (epochs - epoch + 1) / epochs  # 1 at the first epoch, 1/epochs at the last
    return min(1.0, remaining / decay) if decay > 0 else 1.0


def schedule(epoch: int, epochs: int, cfg: TrainConfig) -> float:
    """The learning-rate factor of ``epoch`` in a run of ``epochs``."""
    return lr_factor(epoch, epochs=epochs, decay=cfg.lr_decay)


@dataclass
class Budget:
    """The epoch plan of one run. ``epochs`` is the current plan; :meth:`end_epoch` re-plans
    under a time budget (``cfg.minutes``), and never under a fixed count."""

    cfg: TrainConfig
    epochs: int = 0
    spent: float = 0.0  # seconds of work in finished epochs, across resumes
    done: int = 0
    stopped: bool = False  # ended early (train.patience): the plan is the epochs done
    _mark: float = field(default_factory=time.perf_counter, repr=False)
    _recent: list = field(default_factory=list, repr=False)  # the last epochs' seconds

    def __post_init__(self):
        # a time budget starts from an open-ended plan: the first epoch's schedule is the
        # same under any count (full rate)
        self.epochs = self.epochs or (UNPLANNED if self.timed else self.cfg.epochs)

    @classmethod
    def resume(cls, cfg: TrainConfig, state: dict | None) -> "Budget":
        """The plan a checkpoint dict left (its ``budget``), or a fresh one."""
        saved = (state or {}).get("budget") or {}
        done = int(state["epoch"]) if state else 0
        if saved.get("stopped") and cfg.patience is not None:  # stopped early, then
            return cls(cfg, epochs=done, done=done, stopped=True)  # interrupted before the end
        if cfg.minutes is None:
            return cls(cfg, done=done)
        return cls(cfg, epochs=int(saved.get("epochs", 0)), spent=float(saved.get("spent", 0)),
                   done=done)

    @property
    def timed(self) -> bool:
        return self.cfg.minutes is not None

    def __iter__(self):
        """The (1-based) epochs still to run; the plan may change between them."""
        while self.done < self.epochs:
            yield self.done + 1

    def schedule(self, epoch: int) -> float:
        """The learning-rate factor of ``epoch`` under the plan."""
        return schedule(epoch, self.epochs, self.cfg)

    def start(self) -> None:
        """(Re)start the clock: time before this (set-up, a stop) is not work."""
        self._mark = time.perf_counter()

    def end_epoch(self, world=None) -> None:
        """Count the epoch that just ended (its time, since the last mark) and re-plan; with
        several ranks, rank 0's plan holds on all."""
        now = time.perf_counter()
        self._recent = [*self._recent[-(RECENT - 1):], now - self._mark]
        self.spent, self.done, self._mark = self.spent + now - self._mark, self.done + 1, now
        if self.timed:  # may extend a plan just reached: on_epoch sees the new last epoch
            plan = self.replan()
            self.epochs = plan if world is None else int(world.broadcast_object(plan))

    def replan(self) -> int:
        """The nearest count to what fits the budget that keeps every finished epoch's
        schedule; at least the epochs done."""
        # the pace of the last few epochs, not the mean so far: a machine that got busier (or
        # a first epoch that shared the cores with a start-up) is planned at its pace now; their
        # median, which one or two stalled epochs do not move
        per_epoch = statistics.median(self._recent)
        left = self.cfg.minutes * 60 - self.spent
        wanted = max(self.done, self.done + round(left / per_epoch))  # the nearest end
        ran = [schedule(e, self.epochs, self.cfg) for e in range(1, self.done + 1)]
        step = 1 if wanted < self.epochs else -1
        for candidate in range(wanted, self.epochs, step):
            if all(schedule(e, candidate, self.cfg) == ran[e - 1]
                   for e in range(1, self.done + 1)):
                return candidate
        return self.epochs

    def stop(self) -> None:
        """End the run after the epoch that just ended (early stopping)."""
        self.epochs, self.stopped = self.done, True

    def state(self) -> dict:
        """What a checkpoint keeps: a time budget's plan and spent seconds; an early stop."""
        return ({"epochs": self.epochs, "spent": round(self.spent, 3)} if self.timed else {}) | (
            {"stopped": True} if self.stopped else {})
