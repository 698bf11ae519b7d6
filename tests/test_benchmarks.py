from pathlib import Path
from types import SimpleNamespace

import numpy as np
from benchmarks.cas import accuracy, train_with_snapshots
from benchmarks.tail_filter import acceptance
from conftest import fabricate_images

from augment.config import TrainConfig


def test_cas_snapshots_fill_the_later_marks_when_a_fixed_epoch_count_ends_first():
    cfg = TrainConfig(preset="classic", epochs=2, batch_size=8, width=8)
    snaps = train_with_snapshots(fabricate_images([8, 8]), cfg, seed=0, budget=3600.0,
                                 fractions=[1.0, 0.5])
    assert [(s["fraction"], s["epoch"]) for s in snaps] == [(0.5, 2), (1.0, 2)]
    assert snaps[0]["state"] and snaps[0]["hparams"]["preset"] == "classic"


def test_cas_snapshots_keep_the_last_epoch_within_each_mark(monkeypatch):
    """Epochs end at 10, 20, 30 ... s: with marks at 25 s and 50 s the snapshots are epochs 2
    and 5 (not 3 and 6, the first past each mark), and training stops at the last mark."""
    clock = iter(range(0, 1000, 10))  # t0 = 0, then one reading per epoch
    monkeypatch.setattr("benchmarks.cas.time", SimpleNamespace(perf_counter=lambda: next(clock)))
    cfg = TrainConfig(preset="classic", epochs=20, batch_size=8, width=8)
    snaps = train_with_snapshots(fabricate_images([8, 8]), cfg, seed=0, budget=100.0,
                                 fractions=[0.25, 0.5])
    assert [(s["fraction"], s["epoch"], s["seconds"]) for s in snaps] == [(0.25, 2, 20),
                                                                          (0.5, 5, 50)]


def test_cas_snapshots_end_with_a_budgeted_run_when_it_plans_its_own_end():
    """--minutes: train.minutes ends the run (its plan), and the marks fill at its last epoch."""
    cfg = TrainConfig(preset="classic", epochs=10_000, minutes=0.02, batch_size=8, width=8)
    snaps = train_with_snapshots(fabricate_images([8, 8]), cfg, seed=0, budget=3600.0,
                                 fractions=[0.5, 1.0])
    assert len(snaps) == 2 and snaps[0]["epoch"] == snaps[1]["epoch"] < 10_000


def test_cas_reports_recall_per_real_class_in_class_order(monkeypatch):
    """Test labels 0,0 | 1,1,1,1 | 2×6 and a classifier that gets 2/2, 2/4 and 5/6 of them:
    recall (1, 0.5, 5/6) in class order, accuracy 9/12."""
    splits = {"train": fabricate_images([6, 6, 6]), "val": fabricate_images([3, 3, 3], seed=1),
              "test": fabricate_images([2, 4, 6], seed=2)}
    pred = np.array([0, 0, 1, 1, 0, 2, 2, 2, 2, 2, 2, 1])
    monkeypatch.setattr("benchmarks.cas.predict", lambda *args, **kwargs: pred)
    train = splits["train"]
    acc, recall = accuracy(train.images, train.labels, splits, seed=0, epochs=1)
    assert np.allclose(recall, [1.0, 0.5, 5 / 6]) and np.isclose(acc, 9 / 12)


def test_step_ops_splits_a_step_pair_into_phases_and_finds_the_syncs():
    from benchmarks.step_ops import count_ops
    row = count_ops("dcgan", 8, 16)
    assert sum(row["by_phase"].values()) == row["top_level_ops"] <= row["aten_calls"]
    assert all(row["by_phase"][f"{net} {part}"] > 0 for net in "DG"
               for part in ("adam", "backward", "forward+loss+ema"))
    # the mode-seeking term's boolean index: one nonzero forward, one in its backward, G only
    assert row["syncs"]["aten::nonzero"] == 2
    assert all("(G " in source for source in row["sync_sources"])
    assert count_ops("classic", 8, 16)["syncs"]["aten::nonzero"] == 0


def test_step_ab_times_each_arm_on_one_gan(tmp_path):
    import json

    from benchmarks.step_ab import ARMS, main
    main(["--rounds", "2", "--shapes", "digits8", "--name", "ab", "--out", str(tmp_path)])
    rates = json.loads((tmp_path / "ab.json").read_text())["images_per_s"]["digits8"]
    assert set(rates) == set(ARMS) and all(r > 0 for r in rates.values())


def test_budget_trace_records_each_epochs_seconds_and_plan_and_unpatches_after():
    from augment.budget import Budget
    from augment.config import TrainConfig
    from benchmarks.budget import traced
    trace, original = [], Budget.end_epoch
    with traced(trace):
        budget = Budget(TrainConfig(minutes=1.0, lr_decay=0.3))
        for _ in range(2):
            budget.start()
            budget.end_epoch()
    assert [row["epoch"] for row in trace] == [1, 2] and trace[-1]["plan"] == budget.epochs
    assert budget.epochs > 2 and Budget.end_epoch is original  # planned to the minute, unpatched


def test_alloc_ab_times_four_arms_in_child_processes_and_in_place_changes_no_weight(tmp_path):
    import json

    import torch
    from torch import nn

    import augment.train as T
    from benchmarks.alloc_ab import main
    from benchmarks.step_ab import probe
    for keep in ("env", "mallopt"):
        main(["--rounds", "1", "--blocks", "1", "--shapes", "digits8", "--keep", keep,
              "--name", keep, "--out", str(tmp_path)])
        row = json.loads((tmp_path / f"{keep}.json").read_text())["shapes"]["digits8"]
        assert len(row) == 4 and all(arm["images_s"] > 0 for arm in row.values())
    weights = []
    for inplace in (False, True):  # the arm is free only if it computes the same step
        gan, x, y = probe(1, 8, amp=True)  # as the benchmark builds it
        relus = [m for m in gan.discriminator.modules() if isinstance(m, nn.LeakyReLU)]
        assert relus
        for m in relus:
            m.inplace = inplace
        fakes, _ = T.d_step(gan, x[:40], y[:40])
        T.g_step(gan, fakes, y[:40])
        weights.append(torch.cat([p.flatten() for p in (*gan.generator.parameters(),
                                                        *gan.discriminator.parameters())]))
    assert torch.equal(*weights)


def test_cas_reads_a_split_folder_keeps_its_test_split_and_caps_the_pool(tmp_path):
    """CIFAR-10 as an image folder: the given test split is used whole, the train pool is
    capped per class before val is carved from it (as ``prepare`` does)."""
    from PIL import Image

    from benchmarks.cas import load_splits
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        for c in ("cat", "dog"):
            folder = tmp_path / "cifar10" / split / c
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    splits = load_splits("cifar10", str(tmp_path), seed=0, max_per_class=10)
    assert splits["test"].counts().tolist() == [5, 5]
    assert (splits["train"].counts() + splits["val"].counts()).tolist() == [10, 10]
    assert splits["train"].images.shape[1:] == (3, 8, 8)


def test_tail_filter_acceptance_is_the_prior_corrected_judge_by_hand():
    """[0.8, 0.2]/[0.9, 0.1] renormalised is [0.308, 0.692]; [0.6, 0.4] gives [0.143, 0.857]:
    the tail label of the first passes 0.5 only at τ = 1, the head label of the second only at
    τ = 0."""
    probs, labels = np.array([[0.8, 0.2], [0.6, 0.4]]), np.array([1, 0])
    prior = np.array([0.9, 0.1])
    assert acceptance(probs, labels, prior, tau=0.0, threshold=0.5) == [1.0, 0.0]
    assert acceptance(probs, labels, prior, tau=1.0, threshold=0.5) == [0.0, 1.0]
    assert acceptance(probs, labels, prior, tau=1.0, threshold=0.7) == [0.0, 0.0]


def test_early_stop_replay_stops_at_the_first_stall_and_keeps_the_best_before_it():
    from benchmarks.early_stop import replay

    history = [{"epoch": 1, "d_loss": 1.0}, {"epoch": 2, "fid": 0.5}, {"epoch": 4, "fid": 0.4},
               {"epoch": 6, "fid": 0.45}, {"epoch": 8, "fid": 0.46}, {"epoch": 10, "fid": 0.1}]
    assert replay(history, 2) == (8, 0.4)  # the run with patience 2 never sees epoch 10
    assert replay(history, 5) == (10, 0.1)  # never stalls: the full run


def test_recipes_compare_pairs_runs_drops_partial_variants_prints_one_pair_and_untags(
        capsys, tmp_path):
    """Two runs x one seed: the best non-GAN is the higher-mean plain variant, GAN variants are
    paired against it run by run, a variant missing from a run is left out; and a lone (run,
    seed) pair (one CIFAR-10-LT run) has no interval but still prints and writes; --untag pools a
    tagged variant with its untagged name."""
    import json

    import pandas as pd
    from benchmarks.recipes import compare, main

    rows = [("a", "real+posthoc", 0.50), ("b", "real+posthoc", 0.60),
            ("a", "real+balanced_softmax", 0.70), ("b", "real+balanced_softmax", 0.72),
            ("a", "real+synthetic+posthoc@w0.1", 0.68), ("b", "real+synthetic+posthoc@w0.1", 0.73),
            ("a", "real+synthetic", 0.90)]  # run b lacks it
    table = pd.DataFrame([{"run": r, "seed": 0, "variant": v, "balanced_accuracy": a,
                           "seconds": 1.0} for r, v, a in rows])
    report = compare(table)
    assert report["best_non_gan"] == "real+balanced_softmax"
    assert "real+synthetic" not in report["variants"]
    gap = report["vs_best_non_gan"]["real+synthetic+posthoc@w0.1"]
    assert abs(gap["mean"] - (-0.005)) < 1e-9 and gap["lo"] < gap["mean"] < gap["hi"]
    one = pd.DataFrame([r for r in table.to_dict("records") if r["run"] == "a"])
    (tmp_path / "one.json").write_text(json.dumps({"runs": one.to_dict("records")}))
    main(["--combine", "one", "--out", str(tmp_path), "--name", "pooled"])
    assert "real+synthetic  0.9000 [one pair]" in capsys.readouterr().out
    written = json.loads((tmp_path / "pooled.json").read_text())
    assert written["vs_best_non_gan"]["real+synthetic"]["lo"] is None
    # --untag pools a tagged part with untagged ones: run a's tagged row pairs with run b's
    b = [{**r, "variant": r["variant"].removesuffix("@w0.1")}
         for r in table.to_dict("records") if r["run"] == "b"]
    (tmp_path / "two.json").write_text(json.dumps({"runs": b}))
    main(["--combine", "one", "two", "--untag", "w0.1", "--out", str(tmp_path), "--name", "both"])
    assert json.loads((tmp_path / "both.json").read_text())["pairs"] == 2
    assert "real+synthetic+posthoc " in capsys.readouterr().out


def test_recipes_chosen_on_val_picks_by_val_pair_by_pair_and_pairs_it_without_the_gan():
    """The recommendation is replayed per (run, seed) pair on val scores, not test scores, and
    set against the best non-GAN variant and against the choice among non-GAN variants only."""
    import pandas as pd
    from benchmarks.recipes import compare

    rows = [("a", "real+balanced_softmax", 0.70, 0.80), ("a", "real+posthoc", 0.50, 0.50),
            ("a", "real+synthetic+posthoc", 0.68, 0.85),  # a: the GAN wins on val only
            ("b", "real+balanced_softmax", 0.72, 0.70), ("b", "real+posthoc", 0.60, 0.75),
            ("b", "real+synthetic+posthoc", 0.73, 0.60)]  # b: posthoc wins on val only
    table = pd.DataFrame([{"run": r, "seed": 0, "variant": v, "balanced_accuracy": t,
                           "val_balanced_accuracy": val, "seconds": 1.0}
                          for r, v, t, val in rows])
    chosen = compare(table)["chosen_on_val"]
    assert abs(chosen["mean"] - 0.64) < 1e-9 and chosen["gan_picks"] == 1
    assert chosen["picks"] == {"real+synthetic+posthoc": 1, "real+posthoc": 1}
    assert abs(chosen["vs_best_non_gan"]["mean"] - (-0.07)) < 1e-9  # against BS's 0.70, 0.72
    assert abs(chosen["vs_non_gan_chosen_on_val"]["mean"] - (-0.01)) < 1e-9  # BS 0.70, posthoc 0.60


def test_recipes_seeds_classifiers_from_the_run_and_refuses_gan_variants_before_its_gan(
        monkeypatch, tmp_path):
    """The classifier seed is the run's recorded seed + --seed-offset; a run without a GAN yet
    takes --set seed for non-GAN variants and stops before any fit for a GAN variant."""
    import json

    import pandas as pd
    import pytest
    from benchmarks import recipes

    seeds = []

    def evaluate(params, *, plots, **paths):
        seeds.append(params["seed"])
        Path(plots).mkdir(parents=True)
        pd.DataFrame({"variant": ["real"], "seed": [params["seed"]]}).to_csv(
            Path(plots) / "runs.csv", index=False)
        return {"seconds": {"real": 1.0}}

    monkeypatch.setattr(recipes.stages.evaluate, "run", evaluate)
    params = {"seed": 7, "evaluate": {"variants": ["real"]}}
    recipes.run(tmp_path, params, "plain", offset=1)  # no train_config.json: --set seed
    (tmp_path / "train_config.json").write_text(json.dumps({"seed": 3}))
    recipes.run(tmp_path, params, "recorded", offset=1)
    assert seeds == [8, 4]
    (tmp_path / "train_config.json").unlink()
    with pytest.raises(SystemExit, match="no train_config.json"):
        recipes.run(tmp_path, {**params, "evaluate": {"variants": ["real+synthetic"]}}, "gan")
    assert seeds == [8, 4]


def test_cas_time_to_target_is_the_first_snapshot_at_the_ratio_or_nan():
    import pandas as pd

    from benchmarks.cas import time_to_target
    table = pd.DataFrame({"seed": [0] * 3 + [1] * 3, "preset": ["dcgan"] * 6,
                          "seconds": [30.0, 10.0, 20.0, 10.0, 20.0, 30.0],
                          "cas_over_trtr": [0.995, 0.97, 0.991, 0.9, 0.95, 0.98]})
    rows = time_to_target(table, 0.99).set_index("seed")
    assert rows.loc[0, "seconds_to_target"] == 20.0 and rows.loc[0, "best_cas_over_trtr"] == 0.995
    assert np.isnan(rows.loc[1, "seconds_to_target"]) and rows.loc[1, "seconds_trained"] == 30.0


def _fake_mnist(raw: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """MNIST's raw idx files (torchvision's layout) holding random 28×28 digits of 10 classes."""
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([2051, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            np.array([2049, n], ">i4").tobytes() + labels.tobytes())


def test_gpu_script_runs_every_part_end_to_end_on_the_cpu(tmp_path):
    """benchmarks/gpu.sh is run on a lent GPU, where a broken line costs the lease: every part
    here with tiny knobs on the CPU (the CUDA tests skip), its results in one bundle for $OUT."""
    import json
    import os
    import subprocess
    import sys
    import tarfile

    from test_datasets import image_folder
    data, res, out = tmp_path / "data", tmp_path / "res", tmp_path / "out"
    _fake_mnist(data / "MNIST" / "raw", 200, 50)
    for split, n in (("train", 12), ("test", 3)):  # CIFAR-10's layout: <split>/<class>/<image>
        photos = fabricate_images([n] * 10, size=32, channels=3, seed=n)
        image_folder(data / "cifar10" / split, photos.images, photos.labels, photos.classes)
    out.mkdir()
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "DEVICE": "cpu", "DATA": str(data), "RESULTS": str(res), "OUT": str(out),
           "MNIST_S": "3", "CIFAR_S": "3", "CIFAR_PER_CLASS": "12", "CLF_EPOCHS": "1",
           "BATCHES": "8", "SHAPES": "mnist28", "STEPS": "2", "SYNTH": "64", "COMPILE": "none",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(root / "benchmarks" / "gpu.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "skipped" in (res / "test_cuda.log").read_text()
    rows = json.loads((res / "throughput_gpu.json").read_text())["rows"]
    assert [(r["shape"], r["batch"]) for r in rows] == [("mnist28", 8)] and rows[0]["train_img_s"] > 0
    for name, target in (("cas_mnist_gpu", 0.99), ("cas_cifar_gpu", 0.95)):
        result = json.loads((res / f"{name}.json").read_text())
        assert sorted(r["fraction"] for r in result["runs"]) == [0.25, 0.5, 0.75, 1.0]
        assert [r["target"] for r in result["to_target"]] == [target]
    with tarfile.open(out / "gpu_results.tgz") as bundle:
        names = set(bundle.getnames())
    assert {"./throughput_gpu.json", "./cas_mnist_gpu.json", "./cas_cifar_gpu.json"} <= names


def test_standing_stats_hold_the_mean_batch_statistics_of_fresh_batches_and_leave_g_alone():
    import torch

    from benchmarks.standing_stats import standing_stats

    from augment.models import build_generator
    torch.manual_seed(0)
    g = build_generator({"preset": "dcgan", "image_shape": [1, 8, 8], "num_classes": 3,
                         "z_dim": 4, "width": 4})
    with torch.no_grad():  # running statistics of other weights, as an EMA generator has
        g(torch.randn(5, 4) * 3 + 1, torch.tensor([0, 1, 2, 0, 1]))
    g.eval()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    means = []  # the first batch norm's input means per batch (the copy keeps the hook)
    g.blocks[0].norm.bn.register_forward_hook(
        lambda m, inp, out: means.append(inp[0].float().mean(dim=(0, 2, 3))))
    standing = standing_stats(g, batches=3, batch_size=6, seed=1, amp=False)
    assert len(means) == 3 and not standing.training  # it samples in eval mode
    assert all(torch.equal(before[k], v) for k, v in g.state_dict().items())  # g untouched
    bn = standing.blocks[0].norm.bn
    torch.testing.assert_close(bn.running_mean, torch.stack(means).mean(0))
    assert int(bn.num_batches_tracked) == 3 and bn.momentum == 0.1
    assert not torch.allclose(bn.running_mean, g.blocks[0].norm.bn.running_mean)
    for k, v in standing.state_dict().items():  # only the batch norms' statistics change
        assert torch.equal(v, before[k]) or k.rsplit(".", 1)[-1] in (
            "running_mean", "running_var", "num_batches_tracked"), k
