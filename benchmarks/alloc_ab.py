"""Two free CPU-step candidates, paired: glibc's allocator kept from returning memory to the
system, and D's LeakyReLUs in place. Neither changes a weight (the allocator does no arithmetic;
an in-place LeakyReLU computes the same values), so the question is speed alone.

The allocator is set per process (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` at 1 GB:
large tensors come from the heap, freed pages stay mapped, no page fault per step for them;
``--keep mallopt`` sets the same thresholds with ``mallopt`` in the child, as a stage could),
so each round starts one child per allocator arm, in alternating order; inside a child the
in-place arm alternates with the default in blocks of step pairs whose order flips every
round (the first round warms up). fp32 or bf16 as ``train.amp`` resolves on this CPU, the CPU
defaults per image side. Prints a table, writes json.

    OMP_NUM_THREADS=2 python benchmarks/alloc_ab.py --rounds 3 --name alloc_ab_t2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

import augment.train as T
from augment.io import write_json
from benchmarks.step_ab import SHAPES, alternate, probe

ROOT = Path(__file__).resolve().parents[1]
KEEP = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def child(shape: str, blocks: int, keep: bool) -> dict[str, float]:
    """Training images/s of one GAN, D's LeakyReLUs in place or not, in alternating blocks;
    ``keep``: the heap kept by ``mallopt`` in this process, before any tensor is made."""
    if keep:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        if not (libc.mallopt(-3, 2**30) and libc.mallopt(-1, 2**30)):  # M_MMAP_, M_TRIM_THRESHOLD
            raise RuntimeError("glibc's mallopt refused the thresholds")
    channels, side, block = SHAPES[shape]
    gan, x, y = probe(channels, side, amp=True)
    relus = [m for m in gan.discriminator.modules() if isinstance(m, nn.LeakyReLU)]

    def inplace(flag: bool):
        def arm(_):
            for m in relus:
                m.inplace = flag
            return T.g_step
        return arm
    return alternate(gan, x, y, {"default": inplace(False), "inplace": inplace(True)}, block,
                     blocks + 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--rounds", type=int, default=3, help="child pairs per shape")
    parser.add_argument("--blocks", type=int, default=6, help="timed blocks per arm in a child")
    parser.add_argument("--name", default="alloc_ab")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--keep", choices=["env", "mallopt"], default="env",
                        help="how the heap-kept arm is set: glibc's environment, or mallopt")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.blocks, os.environ.get("AB_MALLOPT") == "1")))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}  # the default arm
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    kept = KEEP if args.keep == "env" else {"AB_MALLOPT": "1"}
    table = {}
    for shape in args.shapes:
        runs = {"glibc default": [], "heap kept": []}
        for rnd in range(args.rounds):
            for arm in (list(runs) if rnd % 2 == 0 else list(runs)[::-1]):
                command = [sys.executable, __file__, "--child", shape, "--blocks", str(args.blocks)]
                out = subprocess.run(command, env=env | (kept if arm == "heap kept" else {}),
                                     check=True, capture_output=True, text=True).stdout
                runs[arm].append(json.loads(out.splitlines()[-1]))
        base = statistics.mean(r["default"] for r in runs["glibc default"])
        table[shape] = {f"{arm}{', inplace' if inplace else ''}": {
            "images_s": round(v := statistics.mean(r[key] for r in rs), 1),
            "over_default": round(v / base, 3), "runs": [round(r[key], 1) for r in rs]}
            for arm, rs in runs.items()
            for inplace, key in ((False, "default"), (True, "inplace"))}
        for arm, row in table[shape].items():
            print(f"{shape:8s} {arm:26s} {row['images_s']:8.1f} images/s "
                  f"{row['over_default']:.3f}x  {row['runs']}", flush=True)
    write_json(Path(args.out) / f"{args.name}.json", {"threads": torch.get_num_threads(),
               "rounds": args.rounds, "keep": args.keep, "shapes": table})


if __name__ == "__main__":
    main()
