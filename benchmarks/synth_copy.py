"""Synthesis images/s on a GPU: uint8 conversion on the device (``augment.runtime.to_uint8``)
against the former conversion on the host (float32 copied back, 4x the bytes, converted there).
Interleaves the two per row so clock drift hits both alike. Prints a table, writes json.

    python benchmarks/synth_copy.py --shapes mnist28 rgb32 --batches 256 1024 4096
"""

from __future__ import annotations

import argparse

import pandas as pd
import torch

import augment.synthesis as synthesize_module
from augment.io import write_json
from augment.runtime import resolve_device, to_uint8
from benchmarks.throughput import ROOT, SHAPES, synth_rate


def host_side(x: torch.Tensor) -> torch.Tensor:
    """The conversion before: float32 to the host, converted to uint8 there."""
    return x.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to("cpu", torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["mnist28", "rgb32"], choices=SHAPES)
    parser.add_argument("--presets", nargs="+", default=["dcgan", "classic"])
    parser.add_argument("--batches", nargs="+", type=int, default=[256, 1024, 4096])
    parser.add_argument("--images", type=int, default=16384, help="images per timed call")
    parser.add_argument("--cudnn-benchmark", action="store_true",
                        help="cuDNN autotuning on, as throughput.py sets it (the library does not)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--name", default="synth_copy")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rows = []
    for shape in args.shapes:
        for preset in args.presets:
            for batch in args.batches:
                row = {"shape": shape, "preset": preset, "batch": batch,
                       "cudnn_benchmark": args.cudnn_benchmark}
                for name, convert in (("host", host_side), ("device", to_uint8)):
                    synthesize_module.to_uint8 = convert
                    row[f"{name}_img_s"] = synth_rate(shape, preset, batch, device,
                                                      n=args.images)
                synthesize_module.to_uint8 = to_uint8
                rows.append(row | {"speedup": row["device_img_s"] / row["host_img_s"]})
                print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format="{:,.2f}".format))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    write_json(ROOT / "benchmarks" / "results" / f"{args.name}.json",
               {"device": name, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
