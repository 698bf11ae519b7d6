"""Can the judge filter keep a long tail's good samples? Per-class acceptance of the generator's
samples under the judge's confidence filter, raw and prior-corrected.

For each seed: the prepare, judge and train stages (params.yaml plus overrides, as
``benchmarks/evidence.py`` runs them), then ``--per-class`` samples per class from the kept
generator, scored by the judge. A sample passes at threshold t when the judge's arg max is its
label and its probability is ≥ t, with the judge's probabilities taken as p(y|x) / π_y^τ,
renormalised (τ = 0: as fit; τ = 1: the balanced posterior, post-hoc logit adjustment).
Prints one line per (seed, τ, t) with every class's acceptance rate and writes json.

    python benchmarks/tail_filter.py --data digits --ratio 100 --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from augment.checkpoint import kept_generator, load_checkpoint
from augment.config import load_params
from augment.data import load_prepared
from augment.io import write_json
from augment.judge import judge_outputs, load_judge
from augment.synthesis import synthesize

from augment.config import override
from benchmarks.evidence import ROOT, SOURCES, run_pipeline


def acceptance(probs: np.ndarray, labels: np.ndarray, prior: np.ndarray, *, tau: float,
               threshold: float) -> list[float]:
    """Per-class share of samples the (prior-corrected) judge assigns their label with ≥
    ``threshold``."""
    q = probs / prior ** tau
    q = q / q.sum(axis=1, keepdims=True)
    ok = (q.argmax(1) == labels) & (q[np.arange(len(q)), labels] >= threshold)
    return [round(float(ok[labels == c].mean()), 3) for c in range(len(prior))]


def run_seed(params: dict, work: Path, per_class: int) -> dict:
    run_pipeline(params, work, upto="train")
    d = lambda name: str(work / name)  # noqa: E731
    counts = load_prepared(d("prepared"), splits=("train",))["train"].counts()
    judge, _ = load_judge(d("judge.pt"), "cpu")
    state = load_checkpoint(d("gan.pt"))
    generator, _ = kept_generator(state, d("gan.pt"), torch.device("cpu"), accept_failed=True)
    images, labels = synthesize(generator, per_class, seed=params.get("seed", 0) + 1,
                                device="cpu")
    _, probs = judge_outputs(judge, images)
    prior = counts / counts.sum()
    rates = {f"tau{tau:g}_t{t:g}": acceptance(probs, labels.numpy(), prior, tau=tau, threshold=t)
             for tau in (0.0, 0.5, 1.0) for t in (0.0, 0.3, 0.5)}
    return {"train_counts": counts.tolist(), "acceptance": rates}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(SOURCES), default="digits")
    parser.add_argument("--ratio", type=float, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--name", default="tail_filter")
    args = parser.parse_args(argv)
    report = {"data": args.data, "ratio": args.ratio, "overrides": args.set, "seeds": {}}
    for seed in args.seeds:
        params = override(load_params(ROOT / "params.yaml"), [*args.set, f"seed={seed}"])
        params["prepare"].update(SOURCES[args.data], imbalance_ratio=args.ratio)
        result = run_seed(params, Path(tempfile.mkdtemp(prefix="augment-tailfilter-")),
                          args.per_class)
        report["seeds"][seed] = result
        print(f"seed {seed}: train counts {result['train_counts']}")
        for key, rates in result["acceptance"].items():
            print(f"  {key:>12}: " + " ".join(f"{r:.2f}" for r in rates), flush=True)
    write_json(ROOT / "benchmarks" / "results" / f"{args.name}.json", report)


if __name__ == "__main__":
    main()
