import dataclasses
import hashlib
import io
import json

import pytest
import torch
import yaml

from augment import selection, stages
from augment.checkpoint import load_checkpoint, load_generator
from augment.config import TrainConfig
from augment.data import load_prepared
from augment.errors import CheckpointError, TrainingError
from augment.runtime import resolve_device
from augment.budget import lr_factor
from augment.train import EMA, resolve_config, train_gan
from conftest import ROOT, fabricate_images, tiny_params


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_preset_defaults_fill_only_unset_keys():
    cfg = resolve_config(TrainConfig(preset="classic", lr_d=1e-3), torch.device("cpu"))
    assert (cfg.loss, cfg.lr_g, cfg.lr_d, cfg.betas) == ("bce", 2e-4, 1e-3, (0.5, 0.999))
    dc = resolve_config(TrainConfig(), torch.device("cpu"))
    assert (dc.loss, dc.width, dc.diffaug, dc.lr_g, dc.lr_decay) == ("hinge", 32, "", 2e-3, 0.3)
    # DiffAugment and the short schedule's lr decay: dcgan's (measured), not sngan's
    sn = resolve_config(TrainConfig(preset="sngan"), torch.device("cpu"))
    assert (sn.diffaug, sn.lr_g, sn.lr_decay) == ("translation,cutout", 1e-3, 0.0)
    assert resolve_config(TrainConfig(preset="classic"), torch.device("cpu")).lr_decay == 0.0
    assert resolve_config(TrainConfig(), torch.device("cuda")).width == 64
    # lean on CPU above 16 px (28×28 MNIST), not on CUDA, and never for the MLP preset
    assert resolve_config(TrainConfig(), torch.device("cpu"), image_size=28).width == 16
    assert resolve_config(TrainConfig(), torch.device("cuda"), image_size=28).width == 64
    assert resolve_config(TrainConfig(preset="classic"), torch.device("cpu"),
                          image_size=28).width == 256
    assert resolve_config(TrainConfig(width=48), torch.device("cpu"), image_size=28).width == 48
    # conv presets: batch 32 on CPU (~1.75x the updates per second), 64 on CUDA; classic keeps
    # the textbook 64; an explicit batch size always wins
    assert resolve_config(TrainConfig(), torch.device("cpu")).batch_size == 32
    assert resolve_config(TrainConfig(), torch.device("cuda")).batch_size == 64
    assert resolve_config(TrainConfig(preset="classic"), torch.device("cpu")).batch_size == 64
    assert resolve_config(TrainConfig(batch_size=16), torch.device("cpu")).batch_size == 16
    # the mode-seeking term is on in the conv presets, off in the textbook recipe
    assert resolve_config(TrainConfig(), torch.device("cpu")).ms_weight == 0.2
    assert resolve_config(TrainConfig(preset="classic"), torch.device("cpu")).ms_weight == 0.0
    assert resolve_config(TrainConfig(ms_weight=0.0), torch.device("cpu")).ms_weight == 0.0
    # DiffAugment: dcgan's off, on when balanced epochs repeat a tail class's images >= 30x;
    # an explicit policy always wins, and the textbook recipe never gets one
    cpu = torch.device("cpu")
    assert [resolve_config(TrainConfig(), cpu, repeat=r).diffaug for r in (1.0, 29.9, 30.0)] \
        == ["", "", "translation,cutout"]
    assert resolve_config(TrainConfig(diffaug=""), cpu, repeat=100.0).diffaug == ""
    assert resolve_config(TrainConfig(preset="classic"), cpu, repeat=100.0).diffaug == ""


def test_a_long_tail_turns_diffaugment_on_only_with_balanced_epochs():
    tail = fabricate_images([60, 2])  # balanced epochs repeat class 1's images 30x
    on = train_gan(tail, TrainConfig(epochs=1, batch_size=16, width=8, balance=True), device="cpu")
    off = train_gan(tail, TrainConfig(epochs=1, batch_size=16, width=8, balance=False),
                    device="cpu")
    assert (on.config.diffaug, off.config.diffaug) == ("translation,cutout", "")


def test_checkpoint_is_weights_only_and_complete(checkpoint):
    state = load_checkpoint(checkpoint)  # uses torch.load(weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert {"generator", "generator_raw", "discriminator", "opt_g", "opt_d"} <= set(state)
    g, classes = load_generator(checkpoint)
    assert classes == tuple("0123456789") and not g.training


def test_train_stage_outputs(checkpoint, prepared, judge):
    d = checkpoint.parent
    assert (d / "samples.png").stat().st_size > 0
    metrics = sorted(p.name for p in (d / "dvclive" / "plots" / "metrics" / "train").iterdir())
    assert metrics == ["d_fake.tsv", "d_loss.tsv", "d_real.tsv", "g_loss.tsv"]
    curves = sorted(p.name for p in (d / "dvclive" / "plots" / "metrics" / "quality").iterdir())
    assert curves == ["diversity_min.tsv", "fid.tsv", "fid_class_mean.tsv", "judge_accuracy.tsv"]
    fid_rows = (d / "dvclive" / "plots" / "metrics" / "quality" / "fid.tsv").read_text().splitlines()
    assert len(fid_rows) == 1 + 2  # header + one row per checkpoint (checkpoint_every=1, 2 epochs)
    quality = json.loads((d / "quality.json").read_text())
    # the report of the checkpoint's final EMA generator, as the stage's probe measures it, on
    # the stage's device: the same numbers on a CPU (a GPU may round a pixel differently)
    real = load_prepared(prepared, splits=("train",))["train"]
    device = resolve_device(tiny_params()["train"]["device"])
    probe = selection.quality_probe(str(judge), real, seed=tiny_params()["seed"], device=device)[0]
    expected = probe(load_generator(checkpoint, device)[0])
    assert quality["epoch"] == load_checkpoint(checkpoint)["best"]["epoch"]
    assert quality["guards"] == {"passed": True, "judge_ratio": quality["guards"]["judge_ratio"],
                                 "reasons": []}
    quality = {k: v for k, v in quality.items() if k not in ("epoch", "guards")}
    assert set(quality) == set(expected) and len(quality["fid_per_class"]) == 10
    tolerance = dict(rel=0, abs=0) if device.type == "cpu" else dict(rel=1e-2, abs=1e-4)
    for key, value in expected.items():
        assert quality[key] == pytest.approx(value, **tolerance), key
    history = load_checkpoint(checkpoint)["history"]
    assert history[-1]["fid"] == quality["fid"]  # the checkpoint carries the curve too


def test_training_is_deterministic_and_resumable(prepared, params, tmp_path):
    def run(out, **kw):
        stages.train.run(params, data=str(prepared), out=str(out), samples=str(out) + ".png", judge=None,
                         logdir=str(tmp_path / f"log_{out.stem}"), settings=str(out) + ".json", **kw)

    run(tmp_path / "a.pt")
    run(tmp_path / "b.pt")
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key
    assert _md5(tmp_path / "a.pt.png") == _md5(tmp_path / "b.pt.png")
    params["train"]["epochs"] = 3  # resume: one more epoch on top of the 2 saved
    run(tmp_path / "a.pt", resume=True)
    resumed = load_checkpoint(tmp_path / "a.pt")
    assert resumed["epoch"] == 3 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]


def test_resume_from_other_models_is_a_clear_error(prepared, params, tmp_path):
    """A checkpoint of another width (or an older layer layout) is refused, not half-loaded."""
    out = tmp_path / "a.pt"
    kw = dict(data=str(prepared), out=str(out), samples=str(tmp_path / "a.png"), judge=None,
              settings=str(tmp_path / "a.json"))
    stages.train.run(params, logdir=str(tmp_path / "log_a"), **kw)
    before = out.read_bytes()
    params["train"]["width"] = 2 * (load_checkpoint(out)["hparams"]["width"])
    with pytest.raises(CheckpointError, match="cannot resume.*drop --resume"):
        stages.train.run(params, logdir=str(tmp_path / "log_b"), resume=True, **kw)
    assert out.read_bytes() == before  # the checkpoint is left as it was


def test_train_gan_library_call_with_wgan_gp(prepared):
    data = load_prepared(prepared, splits=("train",))["train"]
    seen = []
    gan = train_gan(data, TrainConfig(preset="dcgan", loss="wgan-gp", epochs=1, width=8,
                                      batch_size=64, r1_gamma=0.1),
                    seed=3, device="cpu", on_epoch=lambda e, m, g: seen.append((e, m)))
    assert seen[0][0] == 1 and set(seen[0][1]) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(torch.isfinite(torch.tensor(v)) for v in seen[0][1].values())
    assert gan.config.loss == "wgan-gp" and [t.on for t in gan.loss.terms].count("d") == 2


def test_balanced_epochs_visit_every_class_as_often_as_the_largest(monkeypatch):
    import augment.train as T

    seen = []

    def counting_d_step(gan, real, y):
        seen.append(y.clone())
        return original(gan, real, y)

    original = T.d_step
    monkeypatch.setattr(T, "d_step", counting_d_step)
    data = fabricate_images([40, 4])
    cfg = TrainConfig(preset="classic", epochs=1, batch_size=8, width=8, balance=False)
    train_gan(data, cfg, seed=0, device="cpu")
    assert len(seen) == 44 // 8  # plain epoch: every image once
    seen.clear()
    train_gan(data, dataclasses.replace(cfg, balance=True), seed=0, device="cpu")
    labels = torch.cat(seen)
    assert len(seen) == 80 // 8 and torch.bincount(labels).tolist() == [40, 40]


def test_lr_decay_falls_linearly_over_the_last_fraction_and_reaches_the_optimizers():
    factors = [lr_factor(e, epochs=10, decay=0.4) for e in range(1, 11)]
    assert factors[:7] == [1.0] * 7  # constant for the first 60 %
    assert factors[6:] == pytest.approx([1.0, 0.75, 0.5, 0.25])  # then linear, never 0
    assert [lr_factor(e, epochs=10, decay=0.0) for e in (1, 10)] == [1.0, 1.0]
    seen = []
    cfg = TrainConfig(preset="classic", epochs=4, batch_size=8, width=8, lr_decay=0.5)
    train_gan(fabricate_images([8, 8]), cfg, seed=0, device="cpu",
              on_epoch=lambda e, m, g: seen.extend([g.opt_g.param_groups[0]["lr"],
                                                    g.opt_d.param_groups[0]["lr"]]))
    assert seen == pytest.approx([2e-4 * f for f in (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5)])


def _roundtrip(state: dict) -> dict:
    """A checkpoint dict as it comes back from disk (weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_ema_copies_first_then_follows_the_ramp():
    """β_t = min(decay, (1 + t) / (10 + t)) on float weights and buffers; integer buffers
    (BN's step counter) are copied; the average never asks for gradients."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model[0].weight.fill_(1.0), model[1].running_mean.fill_(2.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update_parameters(model)  # t = 0: a copy
    assert torch.equal(ema.module[0].weight, model[0].weight) and ema.steps == 1
    with torch.no_grad():
        model[0].weight.fill_(12.0), model[1].running_mean.fill_(13.0)
        model[1].num_batches_tracked.fill_(9)
    ema.update_parameters(model)  # t = 1: β = 2 / 11, below the 0.5 cap
    beta = 2 / 11
    assert torch.allclose(ema.module[0].weight, torch.full((2, 3), beta * 1 + (1 - beta) * 12))
    assert torch.allclose(ema.module[1].running_mean, torch.full((2,), beta * 2 + (1 - beta) * 13))
    assert int(ema.module[1].num_batches_tracked) == 9
    ema.steps = 1000  # late: the cap holds
    ema.update_parameters(model)
    late = 0.5 * (beta * 1 + (1 - beta) * 12) + 0.5 * 12
    assert torch.allclose(ema.module[0].weight, torch.full((2, 3), late))
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_g_step_freezes_d_and_updates_g_as_the_full_backward_does():
    """G's step asks D only for input gradients: D's weight gradients stay those of its own
    step, D trains again afterwards, and G, its EMA and D end bit for bit where the textbook G
    step (``_g_update`` with D unfrozen, benchmarks/step_ab.py's baseline) leaves them."""
    import copy

    import augment.train as T

    cfg = resolve_config(TrainConfig(width=8, batch_size=8), torch.device("cpu"), image_size=16)
    gan = T.setup(cfg, image_shape=(1, 16, 16), num_classes=3, device=torch.device("cpu"))
    x, y = torch.rand(8, 1, 16, 16) * 2 - 1, torch.arange(8) % 3
    reference = copy.deepcopy(gan)
    untouched = {}  # after G's step, are D's weight gradients still those of D's own step?
    for each, g_step in ((gan, T.g_step), (reference, T._g_update)):
        torch.manual_seed(1)  # the same latents
        fakes, _ = T.d_step(each, x, y)
        before = [p.grad.clone() for p in each.discriminator.parameters()]
        g_step(each, fakes, y)
        untouched[g_step] = all(torch.equal(p.grad, g)
                                for p, g in zip(each.discriminator.parameters(), before))
        torch.manual_seed(2)
        T.d_step(each, x, y)  # D trains from the same state again
    assert untouched[T.g_step] and not untouched[T._g_update]
    assert all(p.requires_grad for p in gan.discriminator.parameters())
    for ours, theirs in ((gan.generator, reference.generator),
                         (gan.ema.module, reference.ema.module),
                         (gan.discriminator, reference.discriminator)):
        assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                     theirs.state_dict().values()))


def test_resume_continues_the_run_exactly():
    """4 epochs straight = 2, then a resume from the epoch-2 checkpoint for 2 more: the same
    weights for G, its EMA and D, bit for bit. Covers the EMA's step count (a restart of its
    warm-up would copy G over the average), the random state (latents, DiffAugment), the batch
    order and a G-every-2-D-steps schedule that runs across epochs (3 D steps per epoch)."""
    data = fabricate_images([8, 8])
    cfg = TrainConfig(epochs=4, batch_size=5, width=8, diffaug="translation", d_steps=2)
    saved = {}

    def keep(epoch, metrics, gan):
        if epoch == 2:
            saved.update(_roundtrip(gan.state(classes=data.classes, epoch=2, history=[])))

    straight = train_gan(data, cfg, seed=3, device="cpu", on_epoch=keep)
    ran = []
    resumed = train_gan(data, cfg, seed=3, device="cpu", resume=saved,
                        on_epoch=lambda epoch, metrics, gan: ran.append(epoch))
    assert ran == [3, 4]
    for a, b in ((straight.ema.module, resumed.ema.module), (straight.generator, resumed.generator),
                 (straight.discriminator, resumed.discriminator)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), name


def test_resume_refuses_a_checkpoint_of_other_classes():
    """Same shapes, other class list (e.g. prepare.classes reordered): labels would swap."""
    data = fabricate_images([8, 8])
    gan = train_gan(data, TrainConfig(epochs=1, batch_size=8, width=8), device="cpu")
    state = _roundtrip(gan.state(classes=("cat", "dog"), epoch=1, history=[]))
    with pytest.raises(CheckpointError, match=r"cannot resume.*\['cat', 'dog'\].*drop --resume"):
        train_gan(data, TrainConfig(epochs=2, batch_size=8, width=8), device="cpu", resume=state)


def test_resume_refuses_a_checkpoint_from_before_exact_resume():
    data = fabricate_images([8, 8])
    gan = train_gan(data, TrainConfig(epochs=1, batch_size=8, width=8), device="cpu")
    state = _roundtrip(gan.state(classes=data.classes, epoch=1, history=[]))
    del state["ema_steps"], state["rng"]
    with pytest.raises(CheckpointError, match="written by an earlier version.*drop --resume"):
        train_gan(data, TrainConfig(epochs=2, batch_size=8, width=8), device="cpu", resume=state)


def test_generator_steps_follow_d_steps_across_epochs():
    """d_steps larger than an epoch's 3 D steps: G still steps, every 4th D step overall."""
    seen = []
    train_gan(fabricate_images([8, 8]), TrainConfig(epochs=4, batch_size=5, width=8, d_steps=4),
              device="cpu", on_epoch=lambda epoch, metrics, gan: seen.append("g_loss" in metrics))
    assert seen == [False, True, True, True]  # D steps 4, 8, 12 end epochs 2, 3 and 4


def test_resuming_a_finished_run_keeps_its_quality_report(checkpoint, prepared, judge, tmp_path):
    """--resume at train.epochs trains nothing; quality.json still gets the final report."""
    d = tmp_path
    (d / "gan.pt").write_bytes(checkpoint.read_bytes())
    stages.train.run(tiny_params(), data=str(prepared), out=str(d / "gan.pt"),
                     samples=str(d / "samples.png"), logdir=str(d / "dvclive"), judge=str(judge),
                     quality=str(d / "quality.json"), settings=str(d / "settings.json"), resume=True)
    report = json.loads((d / "quality.json").read_text())
    assert report["fid"] == json.loads((checkpoint.parent / "quality.json").read_text())["fid"]


def test_mixed_precision_only_where_the_device_runs_bf16_natively(monkeypatch):
    """amp on a CPU without AMX / AVX512-BF16 stays fp32 (emulated bf16 is slower); with one,
    G's convolutions run in bf16 while the weights, optimizer state and EMA stay fp32."""
    from augment import runtime
    data = fabricate_images([8, 8])
    cfg = TrainConfig(epochs=1, batch_size=8, width=8)
    for native in (False, True):
        monkeypatch.setattr(runtime, "bf16_native", lambda device, native=native: native)
        gan = train_gan(data, cfg, device="cpu")
        with gan.autocast():
            fake = gan.generator(torch.randn(2, cfg.z_dim), torch.tensor([0, 1]))
        assert fake.dtype == (torch.bfloat16 if native else torch.float32)
        assert {p.dtype for p in gan.ema.module.parameters()} == {torch.float32}
    monkeypatch.undo()
    off = train_gan(data, dataclasses.replace(cfg, amp=False), device="cpu")
    with off.autocast():
        assert off.generator(torch.randn(2, cfg.z_dim), torch.tensor([0, 1])).dtype == torch.float32


def test_bf16_native_probes_the_cpu(monkeypatch):
    from augment.runtime import bf16_native
    for amx, avx512_bf16, expected in ((False, False, False), (True, False, True),
                                       (False, True, True)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v,
                            raising=False)
        assert bf16_native(torch.device("cpu")) is expected


def test_bf16_native_on_cuda_means_hardware_bf16(monkeypatch):
    """Pre-Ampere GPUs emulate bf16 (torch's default check counts emulation): not native."""
    from augment.runtime import bf16_native
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: including_emulation)
    assert bf16_native(torch.device("cuda")) is False


def test_class_term_is_off_by_default_at_16_px_and_below():
    cpu = torch.device("cpu")
    for preset in ("dcgan", "sngan"):
        assert resolve_config(TrainConfig(preset=preset), cpu, image_size=8).cls_weight == 0.0
        assert resolve_config(TrainConfig(preset=preset), cpu, image_size=16).cls_weight == 0.0
        assert resolve_config(TrainConfig(preset=preset), cpu, image_size=28).cls_weight == 0.2
    assert resolve_config(TrainConfig(cls_weight=0.5), cpu, image_size=8).cls_weight == 0.5


def test_resolving_leaves_no_null_and_is_idempotent():
    for preset in ("dcgan", "sngan", "classic"):
        for size, repeat in ((8, 1.0), (28, 100.0)):
            cfg = resolve_config(TrainConfig(preset=preset), torch.device("cpu"),
                                 image_size=size, repeat=repeat)
            settings = dataclasses.asdict(cfg)
            # null there means off: nothing to resolve
            assert settings.pop("minutes") is None and settings.pop("patience") is None
            assert None not in settings.values() and cfg.device == "cpu"
            assert resolve_config(cfg, torch.device("cpu"), image_size=size,
                                  repeat=repeat) == cfg


def test_settings_file_is_what_the_run_used(checkpoint):
    """metrics/train_config.json: every setting, nulls resolved, as the checkpoint records."""
    used = json.loads((checkpoint.parent / "train_config.json").read_text())
    config = load_checkpoint(checkpoint)["config"]
    assert {k: v for k, v in used.items() if k not in ("seed", "bf16")} == \
        json.loads(json.dumps(config))
    assert used["seed"] == tiny_params()["seed"] and isinstance(used["bf16"], bool)
    assert used.pop("minutes") is None and used.pop("patience") is None  # off: epochs rule
    assert None not in used.values()
    assert (used["batch_size"], used["width"], used["cls_weight"]) == (32, 8, 0.0)  # tiny, 8 px


def test_dry_run_prints_the_settings_and_writes_nothing(prepared, tmp_path, capsys):
    from augment.cli import main

    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text())
    out = tmp_path / "out"
    assert main(["train", "--params", str(params), "--data", str(prepared), "--dry-run",
                 "--out", str(out / "gan.pt"), "--settings", str(out / "settings.json"),
                 "--logdir", str(out / "live"), "--samples", str(out / "s.png")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preset"] == "dcgan" and shown["epochs"] == 50 and shown["device"] == "cpu"
    assert shown["lr_g"] == 2e-3 and shown["cls_weight"] == 0.0 and shown.pop("minutes") is None
    assert shown.pop("patience") is None
    assert None not in shown.values()
    assert not out.exists()


def test_dry_run_refuses_what_the_run_would(prepared, tmp_path, capsys):
    """An unknown DiffAugment op: --dry-run had printed it as fine (exit 0), the real run then
    failed after opening its dvclive folder. Both now stop before any output."""
    from augment.cli import main

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["diffaug"] = "transl"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    out = tmp_path / "out"
    for extra in (["--dry-run"], []):
        assert main(["train", "--params", str(path), "--data", str(prepared), *extra,
                     "--out", str(out / "gan.pt"), "--logdir", str(out / "live"),
                     "--judge", str(tmp_path / "judge.pt")]) == 2
        assert "train.diffaug: unknown op(s) transl" in capsys.readouterr().err
    assert not out.exists()


def _nan_at(monkeypatch, epoch: int, step: int, steps_per_epoch: int):
    """Make D's loss NaN at (1-based) ``epoch``, 0-based ``step``."""
    import augment.train as T

    original, calls = T.d_step, []

    def d_step(gan, real, y):
        fakes, stats = original(gan, real, y)
        calls.append(1)
        if len(calls) == (epoch - 1) * steps_per_epoch + step + 1:
            stats["d_loss"] = torch.tensor(float("nan"))
        return fakes, stats

    monkeypatch.setattr(T, "d_step", d_step)


def test_a_nan_loss_stops_training_naming_epoch_step_and_settings(monkeypatch):
    data = fabricate_images([16, 16])  # 32 images, batch 8: 4 steps per epoch
    _nan_at(monkeypatch, epoch=2, step=2, steps_per_epoch=4)
    epochs_done = []
    with pytest.raises(TrainingError, match=r"epoch 2 at step 3 of 4: d_loss.*train\.lr_g"):
        train_gan(data, TrainConfig(epochs=3, batch_size=8, width=8), device="cpu",
                  on_epoch=lambda epoch, m, gan: epochs_done.append(epoch))
    assert epochs_done == [1]  # the diverged epoch is never reported (nor checkpointed)


def test_nan_weights_stop_training(monkeypatch):
    import augment.train as T

    original = T.g_step

    def g_step(gan, fakes, y):
        stats = original(gan, fakes, y)
        with torch.no_grad():
            next(gan.generator.parameters()).fill_(float("inf"))
        return stats

    monkeypatch.setattr(T, "g_step", g_step)
    with pytest.raises(TrainingError, match="epoch 1 at .*became NaN/inf"):
        train_gan(fabricate_images([16, 16]), TrainConfig(epochs=2, batch_size=8, width=8),
                  device="cpu")


def _train(params, prepared, judge, d, **kw):
    return stages.train.run(params, data=str(prepared), out=str(d / "gan.pt"),
                            samples=str(d / "samples.png"), logdir=str(d / "live"),
                            judge=str(judge), quality=str(d / "quality.json"),
                            settings=str(d / "settings.json"), **kw)


def test_failed_quality_guards_stop_the_stage_and_write_no_model(prepared, judge, params,
                                                                 tmp_path):
    params["train"].update(min_judge_ratio=1.0, min_diversity=50.0)  # cannot be met
    with pytest.raises(TrainingError, match="no checkpoint passed the quality guards.*"
                                            "min_diversity 50.0"):
        _train(params, prepared, judge, tmp_path)
    assert not (tmp_path / "gan.pt").exists() and not (tmp_path / "quality.json").exists()


def test_on_collapse_warn_keeps_the_model_flagged_and_synthesize_refuses_it(
        prepared, judge, params, tmp_path, capsys):
    params["train"].update(min_diversity=50.0, on_collapse="warn")
    _train(params, prepared, judge, tmp_path)
    assert "WARNING: no checkpoint passed" in capsys.readouterr().out
    quality = json.loads((tmp_path / "quality.json").read_text())
    assert quality["guards"]["passed"] is False and "min_diversity" in quality["guards"]["reasons"][0]
    kw = dict(data=str(prepared), model=str(tmp_path / "gan.pt"), judge=str(judge),
              out=str(tmp_path / "syn"), metrics=str(tmp_path / "syn.json"))
    with pytest.raises(CheckpointError, match="failed the train stage's quality guards.*"
                                              "accept_failed_gan"):
        stages.synthesize.run(params, **kw)
    assert not (tmp_path / "syn").exists()
    params["synthesize"]["accept_failed_gan"] = True
    summary = stages.synthesize.run(params, **kw)
    assert summary["gan"]["passed_guards"] is False
    params["evaluate"].update(variants=["real", "real+synthetic"], seeds=1, epochs=1)
    stages.evaluate.run(params, data=str(prepared), synthetic=str(tmp_path / "syn"),
                        metrics=str(tmp_path / "e.json"), plots=str(tmp_path / "plots"),
                        report=str(tmp_path / "rep" / "evaluate.md"))
    report = (tmp_path / "rep" / "evaluate.md").read_text()
    assert "WARNING: the synthetic samples come from a generator that failed" in report
    assert "min_diversity" in report


def test_the_kept_generator_is_the_lowest_fid_checkpoint_that_passes(prepared, judge, params,
                                                                     tmp_path):
    params["train"].update(epochs=4)
    _train(params, prepared, judge, tmp_path)
    state = load_checkpoint(tmp_path / "gan.pt")
    fids = {h["epoch"]: h["fid"] for h in state["history"]}
    assert len(fids) == 4 and state["best"]["epoch"] == min(fids, key=fids.get)
    assert state["epoch"] == 4 and state["best"]["quality"]["fid"] == min(fids.values())
    kept, _ = load_generator(tmp_path / "gan.pt")
    for key, value in kept.state_dict().items():
        assert torch.equal(value, state["best"]["generator"][key]), key


def test_an_interrupted_stage_resumes_and_ends_as_an_uninterrupted_one(
        prepared, judge, params, tmp_path, monkeypatch, capsys):
    import augment.train as T

    params["train"].update(epochs=4)
    _train(params, prepared, judge, tmp_path / "clean")
    original = T.check_finite

    def stop_in_epoch_3(gan, metrics, *, epoch, **kw):
        if epoch == 3:
            raise KeyboardInterrupt  # as Ctrl-C, a kill or a lost machine would
        original(gan, metrics, epoch=epoch, **kw)

    monkeypatch.setattr(T, "check_finite", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        _train(params, prepared, judge, tmp_path / "run")
    assert not (tmp_path / "run" / "gan.pt").exists()
    assert len(list((tmp_path / "run" / "train-resume").glob("*.pt"))) == 1
    monkeypatch.setattr(T, "check_finite", original)
    _train(params, prepared, judge, tmp_path / "run")
    assert "resumed from epoch 2" in capsys.readouterr().out
    assert not list((tmp_path / "run" / "train-resume").glob("*.pt"))  # done: nothing to resume
    clean, run = load_checkpoint(tmp_path / "clean" / "gan.pt"), load_checkpoint(tmp_path / "run" / "gan.pt")
    for part in ("generator", "discriminator"):
        for key in clean[part]:
            assert torch.equal(clean[part][key], run[part][key]), (part, key)
    assert clean["history"] == run["history"] and clean["best"]["epoch"] == run["best"]["epoch"]
    for name in ("gan.pt", "quality.json", "settings.json", "samples.png", "live/metrics.json",
                 "live/plots/metrics/train/g_loss.tsv", "live/plots/metrics/quality/fid.tsv"):
        assert _md5(tmp_path / "clean" / name) == _md5(tmp_path / "run" / name), name


def test_a_changed_setting_starts_afresh(prepared, judge, params, tmp_path, monkeypatch, capsys):
    import augment.train as T

    params["train"].update(epochs=3)
    original = T.check_finite

    def stop_in_epoch_2(gan, metrics, *, epoch, **kw):
        if epoch == 2:
            raise KeyboardInterrupt
        original(gan, metrics, epoch=epoch, **kw)

    monkeypatch.setattr(T, "check_finite", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(params, prepared, judge, tmp_path)
    monkeypatch.setattr(T, "check_finite", original)
    params["train"]["lr_g"] = 1e-3
    _train(params, prepared, judge, tmp_path)
    out = capsys.readouterr().out
    assert "discarded" in out and "other settings, data or code" in out and "resumed" not in out
    assert [h["epoch"] for h in load_checkpoint(tmp_path / "gan.pt")["history"]] == [1, 2, 3]
