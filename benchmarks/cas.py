"""CAS benchmark: are the samples as good as real data for training a classifier?

CAS (Classification Accuracy Score, Ravuri & Vinyals 2019): a fixed classifier trained on
synthetic samples only (class-balanced, as many as the real train split) and tested on the real
test split. TRTR: the same classifier and budget trained on the real train split.

For each seed: fit the judge (domain-FID features) and TRTR once, then train every preset for the
same wall-clock budget, snapshot its EMA generator at fractions of that budget and score each
snapshot (CAS, domain FID, judge accuracy). Reports, per preset, the final CAS / TRTR and the
first time at which the default preset reaches the ``classic`` preset's final CAS.

    python benchmarks/cas.py --data digits --budget 90 --seeds 0 1 2
    python benchmarks/cas.py --data mnist --root ../shared/data --budget 180 --fractions 0.2 1
    # a fixed epoch count (the budget only caps it): what train.lr_decay schedules over
    # (dcgan's default 0.3; with the default unbounded --epochs the rate never falls), and
    # deterministic on CPU whatever else runs on the machine. A short schedule sized to a
    # fifth of classic's time (the epochs that fit in 178 s on this machine):
    python benchmarks/cas.py --data mnist --presets dcgan --epochs 20 --budget 178 --fractions 1
    # one seed per process (OMP_NUM_THREADS=1 each), then one table:
    python benchmarks/cas.py --combine cas_mnist_s0 cas_mnist_s1 cas_mnist_s2 --name cas_mnist
    # CIFAR-10 photos (../shared/data/cifar10, its own test split), 500 per class, scored with
    # the evaluate stage's classifier at its defaults (20 epochs), DiffAugment's CIFAR policy:
    python benchmarks/cas.py --data cifar10 --max-per-class 500 --clf-epochs 20 --budget 600 \
        --presets classic dcgan --set diffaug=color,translation,cutout --seeds 0
    # each snapshot's row keeps its epoch's training means (gan_metrics: d_real, d_fake).
    # (ADA and LeCam were measured here and removed: benchmarks/RESULTS.md.)
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import recall_score

from augment.config import TrainConfig, load_params, override, stage_config
from augment.data import ImageSet, load_prepared
from augment.classifier import SmallCNN, fit_classifier, predict
from augment.fidelity import fidelity_report
from augment.io import atomic_path, write_json
from augment.judge import confidence_filter
from augment.models import build_generator
from augment.runtime import bf16_native, resolve_device
from augment.stages import prepare
from augment.plots import save_png
from augment.synthesis import sample_grid, synthesize
from augment.train import train_gan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"  # TRTR + judge per (data, seed, epochs); not versioned


class _OutOfTime(Exception):
    pass


FOLDERS = ("cifar10",)  # image folders --root/<name>, split layout (train/, test/)


def load_splits(data: str, root: str, seed: int, max_per_class: int | None = None
                ) -> dict[str, ImageSet]:
    """train / val / test as the prepare stage makes them at its defaults (digits 20 % test,
    MNIST and CIFAR-10 their given test split; val 15 % of train; no long tail);
    ``max_per_class`` caps the pool before val is carved."""
    where = ({"source": "folder", "root": str(Path(root) / data)} if data in FOLDERS
             else {"source": data, "root": root})
    params = {"seed": seed, "prepare": {**where, "max_per_class": max_per_class}}
    with tempfile.TemporaryDirectory(prefix="cas-prepare-") as tmp:
        prepare.run(params, out=f"{tmp}/prepared", metrics=f"{tmp}/prepare.json")
        return load_prepared(f"{tmp}/prepared")


def accuracy(images, labels, splits, *, seed: int, epochs: int, device: str = "cpu"
             ) -> tuple[float, np.ndarray]:
    """Test accuracy and per-class recall (K,) of the fixed classifier trained on (images,
    labels), selected on val. A low recall on one class is what mode dropping within that
    class costs, which the class-averaged FID barely shows."""
    model, _ = fit_classifier(images, labels, splits["val"], num_classes=len(splits["train"].classes),
                              epochs=epochs, seed=seed, device=device)
    truth = splits["test"].labels
    pred = predict(model, splits["test"].images, device=device)
    recall = recall_score(truth, pred, labels=np.arange(len(splits["train"].classes)),
                          average=None, zero_division=0)
    return float((pred == truth).mean()), recall


def references(splits: dict[str, ImageSet], *, data: str, seed: int, epochs: int,
               repeats: int = 1, device: str = "cpu", cap: int | None = None,
               cache: Path = CACHE) -> tuple[float, torch.nn.Module]:
    """TRTR accuracy (mean of ``repeats`` classifier fits) and the judge (domain-FID features)
    of one seed, fit once and cached: both depend only on the data split and seed, and cost
    3-6 min per MNIST seed on one core. Delete ``benchmarks/.cache`` after changing the
    classifier or the splits."""
    tag = ("" if device == "cpu" else f"_{device}") + (f"_r{repeats}" if repeats > 1 else "") \
        + (f"_cap{cap}" if cap is not None else "")
    train, path = splits["train"], Path(cache) / f"{data}_seed{seed}_clf{epochs}{tag}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        judge = SmallCNN(channels=train.images.shape[1], num_classes=len(train.classes))
        judge.load_state_dict(saved["judge"])
        return saved["trtr"], judge.eval()
    trtr = float(np.mean([accuracy(train.images, train.labels, splits, seed=seed + k,
                                   epochs=epochs, device=device)[0] for k in range(repeats)]))
    judge, _ = fit_classifier(train.images, train.labels, splits["val"],
                              num_classes=len(train.classes), epochs=20, seed=seed, device=device)
    judge = judge.cpu()
    with atomic_path(path) as tmp:
        torch.save({"trtr": trtr, "judge": judge.state_dict()}, tmp)
    return trtr, judge


def train_with_snapshots(train: ImageSet, cfg: TrainConfig, *, seed: int, budget: float,
                         fractions: list[float], device: str = "cpu") -> list[dict]:
    """Train until ``budget`` seconds; keep the EMA generator of the last epoch that ended by
    each mark (of the first epoch past it when none did), so no snapshot counts late time."""
    marks, snaps, t0 = sorted(fractions), [], time.perf_counter()
    previous = None  # the latest epoch, still within the next mark

    def on_epoch(epoch: int, metrics: dict, gan) -> None:
        nonlocal previous
        elapsed = time.perf_counter() - t0
        current = {"seconds": elapsed, "epoch": epoch, "hparams": gan.hparams,
                   "state": copy.deepcopy(gan.ema.module.state_dict()),
                   "gan": {k: round(v, 4) for k, v in metrics.items()}}  # the epoch's means
        last = epoch == gan.budget.epochs  # a run that ends early fills the later marks
        while marks and (elapsed > marks[0] * budget or last):
            mark = marks.pop(0)
            late = elapsed > mark * budget and previous is not None
            snaps.append({"fraction": mark, **(previous if late else current)})
        previous = current
        if not marks:
            raise _OutOfTime

    try:
        train_gan(train, cfg, seed=seed, device=device, on_epoch=on_epoch)
    except _OutOfTime:
        pass
    return snaps


def cas(generator, n_per_class: int, splits: dict, *, seed: int, epochs: int, repeats: int,
        device: str = "cpu", **draw) -> dict:
    """Mean and std of the CAS over ``repeats`` (synthetic draw, classifier fit) pairs, and the
    mean per-class recall (K,). One pair moves by ~±0.01 (on digits one test image is 0.003);
    the first pair is the one a single-repeat run uses. ``draw``: synthesize() options (a judge
    filter)."""
    scores, recalls = [], []
    for k in range(repeats):
        images, labels = synthesize(generator, n_per_class, seed=seed + 1000 * k, device=device,
                                    **draw)
        score, recall = accuracy(images.numpy(), labels.numpy(), splits, seed=seed + k,
                                 epochs=epochs, device=device)
        scores.append(score)
        recalls.append(recall)
    return {"cas": float(np.mean(scores)), "cas_std": float(np.std(scores)),
            "recall": np.mean(recalls, axis=0)}


def score_snapshot(snap: dict, splits: dict, judge, *, seed: int, epochs: int,
                   filter_threshold: float, repeats: int = 1, device: str = "cpu",
                   amp: bool = True) -> dict:
    """CAS (and CAS of judge-filtered samples), domain FID, judge accuracy of one snapshot;
    ``amp``: sample in bf16 where native, as the training run did."""
    generator = build_generator(snap["hparams"]).to(device)
    generator.load_state_dict(snap["state"])
    train = splits["train"]
    n_per_class = -(-len(train.labels) // len(train.classes))  # balanced, ≈ real train size
    scoring = dict(seed=seed, epochs=epochs, repeats=repeats, device=device)
    scores = cas(generator, n_per_class, splits, **scoring, amp=amp)
    recall = scores.pop("recall")
    scores |= {"recall_min": float(recall.min()),
               "recall_min_class": train.classes[int(recall.argmin())],
               "recall": [round(float(r), 4) for r in recall]}
    if filter_threshold > 0:
        scores["cas_filtered"] = cas(generator, n_per_class, splits, **scoring, amp=amp,
                                     keep=confidence_filter(judge, filter_threshold),
                                     max_draws=1000)["cas"]
    like_real, like_labels = synthesize(generator, dict(enumerate(train.counts().tolist())),
                                        seed=seed + 1, device=device, amp=amp)
    quality = fidelity_report(judge, train, like_real.numpy(), like_labels.numpy())
    return {**scores, "fid": quality["fid"], "judge_accuracy": quality["judge_accuracy"],
            "diversity_min": quality["diversity_min"]}


def run(args) -> pd.DataFrame:
    rows = []
    for seed in args.seeds:
        splits = load_splits(args.data, args.root, seed, args.max_per_class)
        train = splits["train"]
        trtr, judge = references(splits, data=args.data, seed=seed, epochs=args.clf_epochs,
                                 repeats=args.repeats, device=args.device,
                                 cap=args.max_per_class, cache=args.cache)
        print(f"seed {seed}: TRTR {trtr:.4f}", flush=True)
        for preset in args.presets:
            spec, _, batch = preset.partition("@")  # "dcgan:16@256": width 16, batch 256
            name, _, width = spec.partition(":")
            lr = args.lr if name != "classic" else None  # classic stays the textbook recipe
            # every recorded CAS run trained on the split as it is (the default was balance
            # off until 2026-11-30); --set balance=true for class-balanced epochs
            extra = {"balance": False, **(dict(args.set) if name != "classic" else {})}
            cfg = TrainConfig(preset=name, epochs=args.epochs, amp=args.amp,
                              batch_size=int(batch) if batch else args.batch_size,
                              lr_g=lr, lr_d=lr, width=int(width) if width else None, **extra)
            if args.params:  # the shipped defaults: params.yaml's train section, this preset
                cfg = dataclasses.replace(stage_config(load_params(args.params), "train"),
                                          preset=name, device=args.device)
            if args.minutes:  # the run plans its epochs (and rate decay) to end at the budget
                cfg = dataclasses.replace(cfg, minutes=args.budget / 60)
            for snap in train_with_snapshots(train, cfg, seed=seed, budget=args.budget,
                                             fractions=args.fractions, device=args.device):
                row = {"data": args.data, "seed": seed, "preset": preset, "trtr": trtr,
                       "bf16": args.amp and bf16_native(resolve_device(args.device)),
                       "fraction": snap["fraction"], "seconds": round(snap["seconds"], 1),
                       "epoch": snap["epoch"], "gan_metrics": snap["gan"],
                       **score_snapshot(snap, splits, judge, seed=seed, epochs=args.clf_epochs,
                                        filter_threshold=args.filter, repeats=args.repeats,
                                        device=args.device, amp=args.amp)}
                row["cas_over_trtr"] = row["cas"] / trtr
                rows.append(row)
                if args.samples and snap["fraction"] == max(args.fractions):
                    save_samples(snap, Path(args.samples) / f"{args.name or args.data}_"
                                 f"{preset.replace(':', 'w')}_s{seed}.png", len(train.classes))
                print("  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                       for k, v in row.items()
                                       if k not in ("data", "trtr", "recall", "bf16",
                                                    "gan_metrics")),
                      flush=True)
    return pd.DataFrame(rows)


def save_samples(snap: dict, path: Path, num_classes: int) -> None:
    """The snapshot's sample grid (a row per class): look for augmentation leaking into G's
    images (DiffAugment's cutout squares, translation's borders)."""
    generator = build_generator(snap["hparams"])
    generator.load_state_dict(snap["state"])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(path, sample_grid(generator, num_classes=num_classes, per_class=10, device="cpu"))


def time_to_match(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed and non-classic preset: classic's final CAS, and the first time it is reached."""
    out = []
    for (seed, preset), ours in table[table.preset != "classic"].groupby(["seed", "preset"]):
        classic = table[(table.seed == seed) & (table.preset == "classic")].sort_values("seconds")
        if classic.empty:
            continue
        target, classic_s = classic["cas"].iloc[-1], classic["seconds"].iloc[-1]
        reached = ours.sort_values("seconds").query("cas >= @target")
        first = float(reached["seconds"].iloc[0]) if len(reached) else float("nan")
        out.append({"seed": seed, "preset": preset, "classic_final_cas": target,
                    "classic_seconds": classic_s, "seconds_to_match": first,
                    "ratio": first / classic_s})
    return pd.DataFrame(out)


def time_to_target(table: pd.DataFrame, target: float) -> pd.DataFrame:
    """Per seed and preset: the first snapshot's seconds at CAS/TRTR ≥ ``target`` (NaN: not
    within the budget), and the best CAS/TRTR of its snapshots."""
    out = []
    for (seed, preset), runs in table.groupby(["seed", "preset"]):
        runs = runs.sort_values("seconds")
        reached = runs[runs.cas_over_trtr >= target]
        out.append({"seed": seed, "preset": preset, "target": target,
                    "seconds_to_target": float(reached.seconds.iloc[0]) if len(reached)
                    else float("nan"),
                    "best_cas_over_trtr": float(runs.cas_over_trtr.max()),
                    "seconds_trained": float(runs.seconds.iloc[-1])})
    return pd.DataFrame(out)


def combine(args) -> pd.DataFrame:
    """The runs of earlier result files; ``args`` takes their settings (seeds merged)."""
    results = [json.loads((Path(args.out) / f"{name}.json").read_text())
               for name in args.combine]
    seeds = sorted({s for r in results for s in r["args"]["seeds"]})  # each seed once
    mine = {k: getattr(args, k) for k in ("name", "out", "cache", "target")}
    vars(args).update({**results[0]["args"], "seeds": seeds, **mine,
                       "combined_from": args.combine})
    return pd.DataFrame([run for r in results for run in r["runs"]])


def _setting(text: str) -> tuple[str, object]:
    """A train key's ``key=value`` (YAML value), read by the library's override parser."""
    (key, value), = override({}, [f"train.{text}"])["train"].items()
    return key, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="digits", choices=["digits", "mnist", *FOLDERS])
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="cap each class of the train+val pool (val is carved after)")
    parser.add_argument("--root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="+", default=["classic", "dcgan"],
                        help="preset[:width][@batch], e.g. classic dcgan dcgan:16 dcgan@256")
    parser.add_argument("--budget", type=float, default=90.0, help="GAN training seconds")
    parser.add_argument("--epochs", type=int, default=100_000,
                        help="GAN epochs (default: unbounded, the budget ends training and "
                             "train.lr_decay never engages); a fixed count is what lr_decay "
                             "schedules over")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.2, 0.5, 1.0])
    parser.add_argument("--minutes", action="store_true",
                        help="train.minutes = the budget: the run plans its epochs to end there "
                             "(the rate decay with them) instead of being cut off")
    parser.add_argument("--params", default=None, metavar="PARAMS_YAML",
                        help="each preset at that file's train section (e.g. params.yaml: the "
                             "shipped defaults) instead of this script's settings")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="GAN batch size of every preset (default: each preset's own)")
    parser.add_argument("--lr", type=float, default=None,
                        help="lr_g = lr_d of the non-classic presets (default: the preset's)")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig field of the non-classic presets, e.g. cls_weight=0.5")
    parser.add_argument("--filter", type=float, default=0.0,
                        help="also report CAS of samples the judge keeps at this confidence")
    parser.add_argument("--device", default="cpu",
                        help="cpu or cuda: GAN training, synthesis and the CAS classifiers "
                             "(cuda uses each preset's CUDA defaults: width, batch size, AMP)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                        help="train.amp of every preset, and sampling: bf16 autocast where the "
                             "device runs it natively (CUDA; CPUs with AMX / AVX512-BF16); each "
                             "row's bf16 column says whether it was on")
    parser.add_argument("--clf-epochs", type=int, default=15, help="CAS/TRTR classifier epochs")
    parser.add_argument("--repeats", type=int, default=1,
                        help="CAS and TRTR: mean of this many classifier fits (CAS: each on its "
                             "own synthetic draw); less snapshot noise, repeats x the scoring")
    parser.add_argument("--samples", default=str(ROOT / "benchmarks" / "results" / "samples"),
                        metavar="DIR", help="write each run's final sample grid (a row per "
                        "class) to DIR/<name>_<preset>_s<seed>.png; '' for none")
    parser.add_argument("--name", default=None, help="<out>/<name>.json (default cas_<data>)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), metavar="DIR",
                        help="where the json goes (and --combine reads)")
    parser.add_argument("--cache", default=str(CACHE), metavar="DIR",
                        help="TRTR + judge per (data, seed, epochs, device), reused by later "
                             "runs: a fresh folder for data that is not the real set")
    parser.add_argument("--target", type=float, default=None, metavar="RATIO",
                        help="also report the time to CAS/TRTR >= RATIO (the first snapshot "
                             "there; --fractions sets the resolution)")
    parser.add_argument("--combine", nargs="+", default=None, metavar="NAME",
                        help="no training: merge results/<NAME>.json files (seeds run in "
                             "parallel processes) into one table")
    args = parser.parse_args()
    table = combine(args) if args.combine else run(args)
    final = table[table.fraction == max(args.fractions)]
    cols = ["cas", "cas_filtered"] if args.filter > 0 else ["cas"]
    cols += ["recall_min"] if "recall_min" in table else []  # results from before it existed
    summary = final.groupby("preset")[[*cols, "trtr", "cas_over_trtr", "fid", "judge_accuracy",
                                       "seconds"]].agg(["mean", "std"])
    matched = time_to_match(table)
    pd.set_option("display.width", 160)
    print("\nfinal snapshot, mean ± std over seeds", args.seeds)
    print(summary.round(4).to_string())
    print("\nall snapshots (mean over seeds)")
    print(table.groupby(["preset", "fraction"])[["seconds", *cols, "cas_over_trtr", "fid",
                                                  "judge_accuracy"]].mean().round(4).to_string())
    if not matched.empty:
        print("\ntime to reach classic's final CAS")
        print(matched.round(4).to_string(index=False))
    reached = (time_to_target(table, args.target) if args.target is not None
               else pd.DataFrame())
    if not reached.empty:
        print(f"\ntime to CAS/TRTR >= {args.target} (NaN: not within the budget)")
        print(reached.round(4).to_string(index=False))
    out = Path(args.out) / f"{args.name or 'cas_' + args.data}.json"
    write_json(out, {"args": vars(args), "runs": table.to_dict("records"),
                     "matched": matched.to_dict("records"),
                     "to_target": reached.to_dict("records")})


if __name__ == "__main__":
    main()
