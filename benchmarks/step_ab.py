"""The training step's CPU cost, paired: G's step through a frozen D (what ``augment.train`` does)
against the textbook G step (D's weight gradients computed too, then discarded), and the frozen
step with Adam's ``foreach`` kernels instead of its per-tensor loop (the CPU default, kept).

All arms train one GAN (same outputs: ``tests/test_train.py`` checks the frozen step against
the textbook one bit for bit), in alternating blocks of step pairs whose order flips every
round, so load drift on a shared machine hits every arm alike; the first round is a warm-up.
fp32, the CPU defaults per image side (``resolve_config``). Prints a table, writes json.

    OMP_NUM_THREADS=1 python benchmarks/step_ab.py --threads 1 --rounds 9 --name step_ab_t1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import torch

import augment.train as T
from augment.config import TrainConfig
from augment.io import write_json

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"digits8": (1, 8, 40), "mnist28": (1, 28, 10), "rgb32": (3, 32, 8)}  # C, side, block


def adam(g_step: Callable, foreach: bool) -> Callable[[T.GAN], Callable]:
    """An arm: Adam with or without its ``foreach`` kernels, and this G step."""
    def arm(gan: T.GAN) -> Callable:
        for opt in (gan.opt_g, gan.opt_d):
            for group in opt.param_groups:
                group["foreach"] = foreach
        return g_step
    return arm


ARMS = {"textbook G step": adam(T._g_update, False), "D frozen": adam(T.g_step, False),
        "D frozen + foreach Adam": adam(T.g_step, True)}


def probe(channels: int, side: int, *, amp: bool) -> tuple[T.GAN, torch.Tensor, torch.Tensor]:
    """A GAN at the CPU defaults for this image side, and 40 batches of random images, labels."""
    torch.manual_seed(0)
    cfg = T.resolve_config(TrainConfig(amp=amp), torch.device("cpu"), image_size=side)
    gan = T.setup(cfg, image_shape=(channels, side, side), num_classes=10,
                  device=torch.device("cpu"))
    n = cfg.batch_size * 40
    x = (torch.rand(n, channels, side, side) * 2 - 1).contiguous(memory_format=torch.channels_last)
    return gan, x, torch.randint(0, 10, (n,))


def alternate(gan: T.GAN, x: torch.Tensor, y: torch.Tensor, arms: dict, block: int,
              rounds: int) -> dict[str, float]:
    """Training images/s per arm (``arm(gan)`` sets it up and returns its G step) on one GAN,
    in blocks of ``block`` step pairs whose arm order flips every round; round 0 warms up."""
    bs = gan.config.batch_size
    spent, images = dict.fromkeys(arms, 0.0), dict.fromkeys(arms, 0)
    for rnd in range(rounds):
        for arm in (list(arms) if rnd % 2 else list(arms)[::-1]):
            g_step = arms[arm](gan)
            start = time.perf_counter()
            for i in range(block):
                idx = torch.arange(i % 40 * bs, (i % 40 + 1) * bs)
                fakes, _ = T.d_step(gan, x[idx], y[idx])
                g_step(gan, fakes, y[idx])
            if rnd:
                spent[arm] += time.perf_counter() - start
                images[arm] += block * bs
    return {arm: images[arm] / spent[arm] for arm in arms}


def measure(channels: int, side: int, block: int, rounds: int) -> dict[str, float]:
    """Training images/s per arm on one GAN of this shape."""
    return alternate(*probe(channels, side, amp=False), ARMS, block, rounds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--name", default="step_ab")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"threads": args.threads, "rounds": args.rounds, "images_per_s": {}}
    print(f"threads {args.threads}; images/s (× the textbook step)")
    print(f"{'shape':8}" + "".join(f"{arm:>26}" for arm in ARMS))
    for shape in args.shapes:
        rate = measure(*SHAPES[shape], args.rounds)
        report["images_per_s"][shape] = rate
        base = rate["textbook G step"]
        print(f"{shape:8}" + "".join(f"{f'{r:,.0f} ({r / base:.2f}x)':>26}" for r in rate.values()),
              flush=True)
    write_json(Path(args.out) / f"{args.name}.json", report)


if __name__ == "__main__":
    main()
