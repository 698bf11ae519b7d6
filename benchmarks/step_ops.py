"""What one GAN training step pair asks of the host: aten ops per D+G step, by phase.

On a GPU a small model's step is bound by the host when it issues more ops than the device
takes time to run: at batch 64 a `dcgan` step pair takes 17-28 ms on an H100, and CUDA graphs of
G and D gained only 16 % (benchmarks/RESULTS.md, GPU, fifth lease). This counts, with
torch.profiler on the CPU, the ops of one step pair at a preset's *CUDA* config (width, batch,
bf16 autocast where this CPU runs it, foreach Adam as on CUDA), split into forward + loss + EMA,
backward and the Adam step, and the ops that can make a GPU wait: ``nonzero`` (boolean
indexing, a device-to-host read on a GPU) with where it came from, and ``item`` (here Adam
reading its step counters, which a non-capturable Adam keeps on the host: no wait). "aten
calls" counts every dispatcher call, views and allocations included; "top-level" only the
outermost, about what a GPU would launch. A proxy for launches, not a timing. Prints a table,
writes json.

    python benchmarks/step_ops.py                              # dcgan and classic, 8 and 28 px
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from augment.config import TrainConfig
from augment.io import write_json
from augment.runtime import bf16_native, to_unit
from augment.train import d_step, g_step, resolve_config, setup

ROOT = Path(__file__).resolve().parents[1]
SYNCS = ("aten::nonzero", "aten::item", "aten::_local_scalar_dense")


def phase(event) -> str:
    """The step and phase an op ran in, from its chain of parents in the profile."""
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    chain = " < ".join(names)
    part = ("adam" if "Optimizer.step" in chain else
            "backward" if "autograd::engine" in chain else "forward+loss+ema")
    return f"{'D' if names[-1] == 'D' else 'G'} {part}"


def count_ops(preset: str, size: int, batch: int) -> dict:
    """Profile one D+G step pair (after 3 warm-up pairs) at ``preset``'s CUDA config, on CPU."""
    cpu = torch.device("cpu")
    cfg = resolve_config(TrainConfig(preset=preset, batch_size=batch), torch.device("cuda"),
                         image_size=size)
    gan = setup(cfg, image_shape=(1, size, size), num_classes=10, device=cpu)
    for opt in (gan.opt_g, gan.opt_d):  # CUDA's default Adam is the foreach one; the CPU's not
        for group in opt.param_groups:
            group["foreach"] = True
    x = to_unit(torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8).numpy(), cpu
                ).contiguous(memory_format=torch.channels_last)  # as train_gan feeds it
    y = torch.randint(0, 10, (batch,))
    for _ in range(3):
        g_step(gan, d_step(gan, x, y)[0], y)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("D"):
            fakes = d_step(gan, x, y)[0]
        with record_function("G"):
            g_step(gan, fakes, y)
    ops = [e for e in prof.events() if e.name.startswith("aten::")]
    top = [e for e in ops if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")]
    return {"preset": preset, "size": size, "batch": batch, "aten_calls": len(ops),
            "top_level_ops": len(top),
            "by_phase": dict(collections.Counter(phase(e) for e in top)),
            "syncs": {n: sum(e.name == n for e in ops) for n in SYNCS},
            "sync_sources": dict(collections.Counter(
                f"{e.name} < {e.cpu_parent.name if e.cpu_parent else '-'} ({phase(e)})"
                for e in ops if e.name == "aten::nonzero"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["dcgan", "classic"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 28])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--name", default="step_ops", help="results/<name>.json")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    rows = [count_ops(p, s, args.batch) for p in args.presets for s in args.sizes]
    phases = sorted({k for r in rows for k in r["by_phase"]})
    print(f"{'preset':<9}{'px':>4}{'aten calls':>12}{'top-level':>11}"
          + "".join(f"{k:>20}" for k in phases) + f"{'nonzero':>9}{'item':>6}")
    for r in rows:
        print(f"{r['preset']:<9}{r['size']:>4}{r['aten_calls']:>12}{r['top_level_ops']:>11}"
              + "".join(f"{r['by_phase'].get(k, 0):>20}" for k in phases)
              + f"{r['syncs']['aten::nonzero']:>9}{r['syncs']['aten::item']:>6}")
        for source, n in r["sync_sources"].items():
            print(f"    {n} x {source}")
    write_json(Path(args.out) / f"{args.name}.json",
               {"torch": torch.__version__, "bf16": bf16_native(torch.device("cpu")),
                "rows": rows})


if __name__ == "__main__":
    main()
