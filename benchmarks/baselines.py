"""The evaluate stage without a GAN: how strong are the classifier and the non-GAN baselines?

Runs the prepare and evaluate stages (the library functions ``dvc repro`` calls, without
Prefect) with params.yaml plus the overrides given here, on variants that need no synthetic
samples: TRTR (``real``, the classifier trained on the real train split), the classic
augmentation policies, the long-tail losses (variants with ``synthetic`` are dropped). Prints each variant's test balanced accuracy with
its 95 % CI over the paired seeds and seconds per fit; writes json.

    PYTHONPATH=. python benchmarks/baselines.py --data cifar10 --set prepare.max_per_class=500 \\
        --set "evaluate.variants=[real, real+classic]" --policy crop,flip,color \\
        --policy affine,elastic,noise --name cifar_policies

``--policy`` (repeatable) runs the variants once per ``evaluate.classic`` policy, on the same
split and seeds, and names the classic variants ``<variant>@<policy>``.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from augment import stages
from augment.analysis import uses_gan
from augment.config import load_params
from augment.io import write_json

from augment.config import override
from benchmarks.evidence import SOURCES

ROOT = Path(__file__).resolve().parents[1]


def run(params: dict, work: Path) -> tuple[dict, dict]:
    """prepare + evaluate into ``work``: (prepare summary, evaluate summary with seconds)."""
    d = lambda name: str(work / name)  # noqa: E731
    prepared = stages.prepare.run(params, out=d("prepared"), metrics=d("prepare.json"))
    start = time.perf_counter()
    summary = stages.evaluate.run(params, data=d("prepared"), synthetic=d("none"),
                                  metrics=d("evaluate.json"), plots=d("plots"),
                                  report=d("reports/evaluate.md"))
    return prepared, {**summary, "wall_seconds": round(time.perf_counter() - start, 1)}


def rows_of(summary: dict, policy: str | None) -> list[dict]:
    rows = []
    for variant, scores in summary["variants"].items():
        name = f"{variant}@{policy}" if policy and "classic" in variant.split("+") else variant
        acc = scores["balanced_accuracy"]
        rows.append({"variant": name, "bal_acc": acc["mean"], "lo": acc["lo"], "hi": acc["hi"],
                     "minority_recall": scores["minority_recall"]["mean"],
                     "fit_seconds": summary["seconds"][variant]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=list(SOURCES), default="digits")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--policy", action="append", default=[],
                        help="evaluate.classic policy to run the variants with (repeatable)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)

    base = override(load_params(ROOT / "params.yaml"), args.set)
    base["prepare"].update(SOURCES[args.data])
    base["evaluate"]["variants"] = [v for v in base["evaluate"]["variants"]
                                    if not uses_gan(v)]  # no GAN here
    report = {"data": args.data, "overrides": args.set, "runs": []}
    work = Path(tempfile.mkdtemp(prefix="augment-baselines-"))
    for policy in args.policy or [None]:
        params = copy.deepcopy(base)
        if policy:
            params["evaluate"]["classic"] = policy
        prepared, summary = run(params, work / (policy or "default").replace(",", "_"))
        rows = rows_of(summary, policy)
        report["runs"].append({"policy": policy or summary.get("classic_policy"),
                               "n_train": prepared["n_train"], "n_test": prepared["n_test"],
                               "splits": prepared.get("splits"),
                               "wall_seconds": summary["wall_seconds"], "rows": rows})
        for r in rows:
            print(f"{r['variant']:>40}  {r['bal_acc']:.4f} [{r['lo']:.4f}, {r['hi']:.4f}]  "
                  f"minority {r['minority_recall']:.4f}  {r['fit_seconds']:.1f} s/fit", flush=True)
        write_json(Path(args.out) / f"{args.name or 'baselines_' + args.data}.json", report)


if __name__ == "__main__":
    main()
