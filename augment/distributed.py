"""Data-parallel training with ``torch.distributed``: the process group, and torchrun's launcher.

Every rank holds the whole model and trains on its share of each global batch; after each
backward the ranks average their gradients (one all-reduce per optimizer step), so every rank
takes the same optimizer step and the models stay identical. Rank 0 alone scores, logs and
writes checkpoints.

Why gradients are all-reduced here rather than by wrapping G and D in ``DistributedDataParallel``
(the choice of stylegan2-ada and EDM): D is called through several entry points per step (real
and fake in one pass split in two minibatch-std groups, ``scores`` for the class term, the R1 and
gradient penalties' ``torch.autograd.grad`` double backward), which DDP's forward hook does not
see and which its documentation excludes (``autograd.grad``). Buffers are not all-reduced:
spectral norm's power-iteration vectors and BN's running statistics evolve per rank and are
broadcast from rank 0 at every epoch end, so a checkpoint holds every rank's state and resuming
is exact. Batch statistics are per rank on the CPU (gloo: ``SyncBatchNorm`` runs only on GPUs)
and synchronised on CUDA (``SyncBatchNorm``), so on CUDA a rank sees the single-process batch's
statistics.

Launch: ``torchrun --nproc-per-node=N -m augment train`` (any torchrun setup: several nodes,
a rendezvous server), or ``train.nproc: N`` in params, which starts N local ranks through
torchrun's Python API (:func:`launch`): the same agent, rendezvous and worker monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .errors import AugmentError, ConfigError, TrainingError
from .runtime import resolve_device


def launched() -> bool:
    """Whether this process is a rank started by torchrun (or :func:`launch`)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_WORLD_SIZE" in os.environ


@dataclass(frozen=True)
class Solo:
    """One process: every collective is the identity."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # ranks on this machine

    def average_gradients(self, module: nn.Module) -> None:
        pass

    def reduce(self, tensor: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        return tensor

    def broadcast_state(self, *modules: nn.Module) -> None:
        pass

    def broadcast_object(self, obj):
        return obj

    def sync_batchnorm(self, module: nn.Module) -> nn.Module:
        return module


@dataclass(frozen=True)
class Group(Solo):
    """A rank of an initialised ``torch.distributed`` process group."""

    def average_gradients(self, module: nn.Module) -> None:
        """Every rank's gradients → their mean, in one flat all-reduce (parameters without a
        gradient keep None)."""
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        torch._foreach_copy_(grads, [chunk.view_as(g) for chunk, g in
                                     zip(flat.split([g.numel() for g in grads]), grads)])

    def reduce(self, tensor: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        """``tensor`` combined over the ranks by ``op`` (a copy: the input is left alone)."""
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=op)
        return tensor

    def broadcast_state(self, *modules: nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank."""
        with torch.no_grad():
            for module in modules:
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor.data, src=0)

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable) on every rank."""
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_batchnorm(self, module: nn.Module) -> nn.Module:
        """Batch statistics over all ranks' batches on CUDA; unchanged on the CPU (gloo)."""
        if next(module.parameters()).device.type != "cuda":
            return module
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)


def current() -> Solo:
    """This process's place: joins torchrun's process group when launched by it (NCCL with
    CUDA, gloo otherwise; each rank on GPU ``LOCAL_RANK``), else :class:`Solo`."""
    if not launched():
        return Solo()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if cuda else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), local_rank,
                 int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def check_batch(batch_size: int, ranks: int) -> None:
    """The global batch must split evenly: each rank takes ``batch_size / ranks`` images."""
    if batch_size % ranks:
        raise ConfigError(f"train.batch_size {batch_size} does not split over {ranks} ranks "
                          f"(train.nproc or torchrun's world size): make it a multiple of {ranks}"
                          f", e.g. {ranks * max(1, round(batch_size / ranks))}")


def rank_device(device: str, local_ranks: int, local_rank: int) -> torch.device:
    """The device of this rank: ``train.device`` resolved, on CUDA the GPU ``local_rank`` (one
    rank per GPU of this machine)."""
    resolved = resolve_device(device)
    if resolved.type != "cuda":
        return resolved
    if local_ranks > torch.cuda.device_count():
        raise ConfigError(f"{local_ranks} training ranks on this machine (train.nproc or "
                          f"torchrun --nproc-per-node) but {torch.cuda.device_count()} GPU(s): "
                          "one rank per GPU; lower it, or spread the ranks over nodes")
    return torch.device("cuda", local_rank)


def rank_generator_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of torch's global generator for ``epoch`` on ``rank`` (latents, DiffAugment):
    ranks draw different latents, and an epoch's draws depend on (seed, epoch, rank) alone, so a
    resumed run draws what an uninterrupted one would on every rank."""
    return int(np.random.SeedSequence([seed, epoch, rank, 1]).generate_state(1)[0])


def launch(fn: Callable, nproc: int, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` on ``nproc`` local ranks with torchrun's agent (c10d
    rendezvous on a free local port, no restarts); rank 0's return value.

    A rank that raises an :class:`AugmentError` ends the run with that error here (the other
    ranks are stopped by the agent); any other failure becomes a :class:`TrainingError` naming
    the rank and the error."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", run_id=f"augment-{uuid.uuid4().hex[:8]}",
                          max_restarts=0, monitor_interval=0.2, start_method="spawn")
    with tempfile.TemporaryDirectory(prefix="augment-ranks-") as errors, _quiet_agent():
        try:
            results = elastic_launch(config, _rank_main)(fn, errors, args, kwargs)
        except ChildFailedError as failed:
            raise _rank_error(Path(errors), failed) from None
    return results[0]


def _rank_main(fn: Callable, errors: str, args: tuple, kwargs: dict):
    """A rank's entry point: dies with the agent, its share of the CPU threads, the process
    group. (torch's spawn asks for SIGINT when the agent dies, which a rank blocked in a
    collective or a long kernel only sees when it returns to Python: seconds to never.)"""
    from .runtime import die_with_parent

    die_with_parent(signal.SIGKILL)  # nothing to clean up: outputs are written atomically
    agent = multiprocessing.parent_process()
    if agent is not None and agent.pid != os.getppid():  # it died before the request above
        os._exit(1)
    if "OMP_NUM_THREADS" not in os.environ:  # torchrun's rule: the cores shared by the ranks
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, (cores or 1) // int(os.environ["LOCAL_WORLD_SIZE"])))
    try:
        current()
        return fn(*args, **kwargs)
    except AugmentError as err:  # the user's error, re-raised by launch(): no traceback here
        (Path(errors) / f"{os.environ['RANK']}.pkl").write_bytes(pickle.dumps(err))
        raise SystemExit(2) from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _rank_error(errors: Path, failed) -> Exception:
    """The first rank's pickled user error, or a TrainingError describing the failure."""
    for path in sorted(errors.glob("*.pkl"), key=lambda p: int(p.stem)):
        return pickle.loads(path.read_bytes())
    rank, first = min(failed.failures.items())
    data = first.error_file_data or {}
    message = data.get("message")
    if isinstance(message, dict):  # torch's record(): {"message", "extraInfo": {"py_callstack"}}
        print(f"training rank {rank}: {message.get('extraInfo', {}).get('py_callstack', '')}",
              file=sys.stderr)
        message = message.get("message")
    return TrainingError(f"training rank {rank} failed (exit code {first.exitcode}): "
                         f"{message or 'no error recorded (killed by a signal?)'}; run with "
                         "train.nproc: 1 to see the error in one process")


@contextlib.contextmanager
def _quiet_agent():
    """torchrun's agent logs each worker's traceback at ERROR; :func:`launch` reports it."""
    logger = logging.getLogger("torch.distributed.elastic")
    level, logger.level = logger.level, logging.CRITICAL
    try:
        yield
    finally:
        logger.setLevel(level)
