"""GAN training and synthesis throughput (images/s), and the train stage's time, on this device.

For each shape (digits 8×8×1, MNIST 28×28×1, RGB 32×32×3 and 64×64×3) × preset × batch size:
  train images/s      real images per second through one D step + one G step (+ EMA),
                      timed over --steps steps after a warm-up, device synchronised
  synthesis images/s  augment.synthesize() of 16k images (after one warm-up call), uint8 on CPU
Plus the train stage's work on digits with params.yaml's train section (what `dvc repro` runs).
--compile MODE wraps G and D in torch.compile (a probe, not a pipeline option: on this CPU it
measured neutral, on an H100 reduce-overhead +16 %); the first step pair, compilation included,
is reported as "first step s".
AMP (bf16 autocast) is on where the device runs bf16 natively (CUDA; CPUs with AMX or
AVX512-BF16), as in the pipeline; --no-amp measures fp32. Prints a table, writes json.

    python benchmarks/throughput.py                       # CPU here: small batches only
    OMP_NUM_THREADS=1 python benchmarks/throughput.py --batches 32 64 --no-amp --name t_fp32
    python benchmarks/throughput.py --batches 256 1024 4096 --name throughput_h100
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from augment.config import TrainConfig, stage_config
from augment.data import ImageSet
from augment.io import write_json
from augment.runtime import bf16_native, resolve_device
from augment.sources import load_digits_source
from augment.synthesis import synthesize
from augment.runtime import to_unit
from augment.train import d_step, g_step, resolve_config, setup, train_gan

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {"digits8": (1, 8), "mnist28": (1, 28), "rgb32": (3, 32), "rgb64": (3, 64)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_set(channels: int, size: int, n: int, seed: int = 0) -> ImageSet:
    """Random uint8 images (not zeros: they can run faster than real data) in 10 classes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    return ImageSet(images, rng.integers(0, 10, n), tuple(str(c) for c in range(10)))


def timed_train(data: ImageSet, cfg: TrainConfig, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    train_gan(data, cfg, seed=0, device=device)
    sync(device)
    return time.perf_counter() - t0


def train_rate(shape: str, preset: str, batch: int, steps: int, device: torch.device,
               amp: bool = True, compile_mode: str = "none") -> tuple[float, float]:
    """Steady-state real images/s of the D+G step pair, after ≥ 1 s and ≥ ``steps`` // 4 steps
    of warm-up (cuDNN autotuning; an idle GPU's clocks ramp up over the first second), and the
    seconds of the first step pair (with ``compile_mode`` other than "none": compilation)."""
    channels, size = SHAPES[shape]
    cfg = resolve_config(TrainConfig(preset=preset, batch_size=batch, amp=amp), device,
                         image_size=size)
    gan = setup(cfg, image_shape=(channels, size, size), num_classes=10, device=device)
    x = to_unit(random_set(channels, size, batch).images, device).contiguous(
        memory_format=torch.channels_last)  # as train_gan feeds it
    y = torch.randint(0, 10, (batch,), device=device)
    if compile_mode != "none":
        torch._dynamo.reset()  # each row compiles afresh: no dynamic shapes from the last batch
        for net in (gan.generator, gan.discriminator):
            net.compile(mode=None if compile_mode == "default" else compile_mode)

    def pair() -> None:  # one D step + one G step, as train_gan's loop runs them
        if compile_mode == "reduce-overhead":  # CUDA graphs: outputs of the last pair may be
            torch.compiler.cudagraph_mark_step_begin()  # overwritten from here on
        g_step(gan, d_step(gan, x, y)[0], y)

    t0 = time.perf_counter()
    pair()
    sync(device)
    first = time.perf_counter() - t0
    warm_until, i = time.perf_counter() + 1.0, 0
    while i < steps // 4 or time.perf_counter() < warm_until:
        pair()
        i += 1
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        pair()
    sync(device)
    return batch * steps / (time.perf_counter() - t0), first


def synth_rate(shape: str, preset: str, batch: int, device: torch.device, amp: bool = True,
               n: int | None = None) -> float:
    """Images/s of one ``synthesize`` call of ``n`` images after an equal warm-up call. On a GPU
    16k images take 50-300 ms and repeat readings differed by up to 2x: time 64k there."""
    n = n or (65536 if device.type == "cuda" else 16384)
    channels, size = SHAPES[shape]
    cfg = resolve_config(TrainConfig(preset=preset), device, image_size=size)
    generator = setup(cfg, image_shape=(channels, size, size), num_classes=10,
                      device=device).ema.module
    synthesize(generator, n // 10, batch_size=batch, device=device, amp=amp)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    images, _ = synthesize(generator, n // 10, batch_size=batch, device=device, amp=amp)
    return len(images) / (time.perf_counter() - t0)


def train_stage_seconds(device: torch.device, epochs: int | None = None, amp: bool = True
                        ) -> dict:
    """train_gan on digits (all 1,797 images' train share) with params.yaml's train section."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = stage_config(params, "train")
    cfg = dataclasses.replace(cfg, epochs=epochs or cfg.epochs, amp=amp)
    pool, _ = load_digits_source()
    data = pool.subset(np.arange(int(len(pool.labels) * 0.68)))  # ≈ the train split's size
    seconds = timed_train(data, dataclasses.replace(cfg, device=device.type), device)
    return {"epochs": cfg.epochs, "images": len(data.labels), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--presets", nargs="+", default=["dcgan", "classic"])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--stage-epochs", type=int, default=None,
                        help="train-stage epochs (default: params.yaml; 0: skip)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="bf16 autocast where native (the default), or fp32 (--no-amp)")
    parser.add_argument("--compile", default="none", dest="compile_mode",
                        choices=["none", "default", "reduce-overhead", "max-autotune"],
                        help="torch.compile G and D in the training-rate probe")
    parser.add_argument("--synth-images", type=int, default=None,
                        help="images per timed synthesize() call (default: 64k CUDA, 16k CPU)")
    parser.add_argument("--name", default="throughput", help="results/<name>.json")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    device = resolve_device("auto")
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    torch.ones(1, device=device).sum().item()  # CUDA context start-up stays out of the timings
    bf16 = args.amp and bf16_native(device)
    print(f"device: {name}; torch {torch.__version__}; {'bf16 autocast' if bf16 else 'fp32'}")
    stage = (None if args.stage_epochs == 0 else
             train_stage_seconds(device, args.stage_epochs, amp=args.amp))
    if stage:
        print(f"train stage work (digits, {stage['epochs']} epochs, {stage['images']} images): "
              f"{stage['seconds']:.1f} s")
    rows, out = [], Path(args.out) / f"{args.name}.json"
    print(f"{'shape':<9}{'preset':<9}{'batch':>7}{'train img/s':>14}{'first step s':>14}"
          f"{'synth img/s':>14}")
    for shape in args.shapes:
        for preset in args.presets:
            for batch in args.batches:
                rate, first = train_rate(shape, preset, batch, args.steps, device, amp=args.amp,
                                         compile_mode=args.compile_mode)
                row = {"shape": shape, "preset": preset, "batch": batch, "train_img_s": rate,
                       "first_step_s": first,
                       "synth_img_s": synth_rate(shape, preset, batch, device, amp=args.amp,
                                                 n=args.synth_images)}
                rows.append(row)
                print(f"{shape:<9}{preset:<9}{batch:>7}{rate:>14,.0f}{first:>14.2f}"
                      f"{row['synth_img_s']:>14,.0f}", flush=True)
                write_json(out, {"device": name, "torch": torch.__version__, "amp": args.amp,
                                 "bf16": bf16, "compile": args.compile_mode,
                                 "train_stage": stage, "rows": rows})
                # written after each row: a cut-off run keeps the rows it has


if __name__ == "__main__":
    main()
