"""CUDA-only checks: skipped on machines without a GPU (CI), run on a lent one by
``benchmarks/gpu.sh``. They cover what the CPU suite cannot: the bf16 probe on real hardware,
a checkpoint trained on the GPU used on the CPU, resuming a GPU run, and torchrun with NCCL."""

from __future__ import annotations

import io

import pytest
import torch

from augment.checkpoint import save_checkpoint
from augment.config import TrainConfig
from augment.runtime import bf16_native, to_uint8
from augment.synthesis import synthesize
from augment.train import train_gan
from conftest import fabricate_images

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CFG = TrainConfig(epochs=4, batch_size=8, width=8, diffaug="translation,cutout")


def test_bf16_native_is_true_from_ampere_on():
    major, _ = torch.cuda.get_device_capability()
    assert bf16_native(torch.device("cuda")) is (major >= 8)


def test_to_uint8_converts_on_the_gpu_to_the_same_bytes():
    x = torch.randn(64, 3, 32, 32, device="cuda").contiguous(memory_format=torch.channels_last)
    images = to_uint8(x)
    assert images.device.type == "cpu" and images.dtype == torch.uint8 and images.is_contiguous()
    assert torch.equal(images, to_uint8(x.cpu()))


def test_gpu_checkpoint_synthesizes_the_same_images_on_the_cpu(tmp_path):
    """Train on the GPU, sample from the checkpoint on either device: same noise (drawn on the
    CPU from the seed), so the same images up to fp32/TF32 rounding."""
    data = fabricate_images([12, 9, 7], size=16)
    gan = train_gan(data, CFG, seed=1, device="cuda")
    save_checkpoint(tmp_path / "g.pt", gan.state(classes=data.classes, epoch=4, history=[]))
    counts = {"c0": 3, "c2": 5}
    gpu, gpu_labels = synthesize(tmp_path / "g.pt", counts, seed=2, device="cuda", amp=False)
    cpu, cpu_labels = synthesize(tmp_path / "g.pt", counts, seed=2, device="cpu", amp=False)
    assert gpu.shape == (8, 1, 16, 16) and gpu.dtype == torch.uint8 and gpu.device.type == "cpu"
    assert gpu_labels.tolist() == cpu_labels.tolist() == [0] * 3 + [2] * 5
    diff = (gpu.int() - cpu.int()).abs().float()
    assert diff.mean() < 0.5 and diff.max() <= 8, (diff.mean(), diff.max())


def _max_weight_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max((x.float() - y.float()).abs().max().item()
               for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_gpu_resume_continues_the_run(monkeypatch):
    """4 epochs straight against 2 + a resume for 2 on the GPU. Atomics in cuDNN/scatter
    backward make GPU runs not bit-exact, so the check is a tolerance, with another seed as
    the control that a resume drawing other latents or batches would look like."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    data = fabricate_images([8, 8])
    saved = {}

    def keep(epoch, metrics, gan):
        if epoch == 2:  # through the CPU, as load_checkpoint(map_location="cpu") hands it over
            buffer = io.BytesIO()
            torch.save(gan.state(classes=data.classes, epoch=2, history=[]), buffer)
            buffer.seek(0)
            saved.update(torch.load(buffer, map_location="cpu", weights_only=True))

    straight = train_gan(data, CFG, seed=3, device="cuda", on_epoch=keep)
    resumed = train_gan(data, CFG, seed=3, device="cuda", resume=saved)
    other = train_gan(data, CFG, seed=4, device="cuda")
    for part in ("generator", "discriminator"):
        same = _max_weight_diff(getattr(straight, part), getattr(resumed, part))
        control = _max_weight_diff(getattr(straight, part), getattr(other, part))
        assert same < 1e-3 < control, (part, same, control)


def test_torchrun_trains_one_nccl_rank_per_gpu(prepared, judge, params, tmp_path):
    """``torchrun --nproc-per-node=<GPUs>``: NCCL, a rank per GPU, SyncBatchNorm in G; the
    checkpoint synthesizes on the CPU. One GPU still runs the whole NCCL/SyncBN path."""
    import json
    import os
    import subprocess
    import sys

    import yaml

    from conftest import ROOT

    gpus = torch.cuda.device_count()
    params["train"].update(epochs=2, batch_size=8 * gpus, device="cuda")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",  # = torchrun
           f"--nproc-per-node={gpus}", "-m", "augment.cli", "train", "--params",
           str(tmp_path / "params.yaml"), "--data", str(prepared), "--judge", str(judge), "--out",
           str(tmp_path / "gan.pt"), "--samples", str(tmp_path / "s.png"), "--logdir",
           str(tmp_path / "live"), "--settings", str(tmp_path / "c.json"), "--quality",
           str(tmp_path / "q.json")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = json.loads((tmp_path / "c.json").read_text())
    assert settings["nproc"] == gpus and settings["device"] == "cuda"
    images, _ = synthesize(tmp_path / "gan.pt", 2, seed=0, device="cpu")
    assert images.shape[0] == 2 * 10  # 2 per digit class


def test_mixing_parts_run_on_the_gpu():
    """mixup batches and their soft targets stay on the batch's device."""
    import numpy as np

    from augment import mixing
    from augment.config import EvaluateConfig

    x = torch.randn(8, 1, 4, 4, device="cuda")
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1], device="cuda")
    for make in (mixing.mixup,):
        xm, t = make(np.array([30, 2]), EvaluateConfig())(x, y, np.random.default_rng(0))
        assert xm.device.type == t.device.type == "cuda" and t.shape == (8, 2)
