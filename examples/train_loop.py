"""Your own PyTorch loop on ImageFolders, with and without augment's synthetic samples.

    python examples/train_loop.py --train photos/train --val photos/val --test photos/test \
        --synthetic data/synthetic --synthetic-weight 0.5

Prints test balanced accuracy of ``real`` and ``real+synthetic``. With the evaluate stage's
classifier, budget and seed (the defaults), the draws and numbers are the stage's.
"""
import argparse, copy  # noqa: E401

import numpy as np, torch, torch.nn.functional as F  # noqa: E401
from PIL import Image
from sklearn.metrics import balanced_accuracy_score
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2
import augment
from augment.config import ClassifierConfig as C
from augment.classifier import seeded_classifier


def scale(x):  # uint8 → [-1, 1], as the evaluate stage feeds its classifier
    return x.float().div(127.5).sub(1.0)


def predict(model, data, workers):
    model.eval()
    with torch.no_grad():
        return torch.cat([model(x).argmax(1) for x, _ in
                          DataLoader(data, batch_size=512, num_workers=workers)]).numpy()


def fit(train, sampler, val, test, a, channels):
    """Train; keep the epoch with the best val balanced accuracy; score it on test."""
    model = seeded_classifier(channels=channels, num_classes=len(val.classes), width=a.width,
                              seed=a.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    steps = len(sampler) // a.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=a.lr, total_steps=a.epochs * steps)
    loader = DataLoader(train, batch_size=a.batch_size, sampler=sampler, num_workers=a.workers)
    best, state = -1.0, None  # the epoch with the best val score is kept, as in the stage
    for _ in range(a.epochs):
        model.train()
        for x, y in loader:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step(), sched.step()
        score = balanced_accuracy_score(val.targets, predict(model, val, a.workers))
        if score > best:
            best, state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(state)
    return balanced_accuracy_score(test.targets, predict(model, test, a.workers))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--train", "--val", "--test", "--synthetic"):
        p.add_argument(name, required=True)
    stage = {k: getattr(C, k) for k in ("epochs", "batch_size", "lr", "weight_decay", "width")}
    for key, value in {"synthetic_weight": 1.0, "workers": 0, "seed": 0, **stage}.items():
        p.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    a = p.parse_args(argv)
    tf = v2.Compose([v2.ToImage(), scale])
    fake = augment.SyntheticDataset(a.synthetic, transform=tf)
    channels = fake[0][0].shape[0]  # grey or colour, as the GAN was trained
    mode = "L" if channels == 1 else "RGB"
    train, val, test = (ImageFolder(d, transform=tf, loader=lambda f: Image.open(f).convert(mode))
                        for d in (a.train, a.val, a.test))
    draws = (len(train) + len(fake)) // a.batch_size * a.batch_size  # equal steps for both
    mixed, with_sampler = augment.mix(train, fake, synthetic_weight=a.synthetic_weight,
                                      seed=a.seed, num_samples=draws)
    without = augment.MixedSampler(np.zeros(len(train), bool), num_samples=draws, seed=a.seed)
    for name, data, sampler in (("real", train, without), ("real+synthetic", mixed, with_sampler)):
        score = fit(data, sampler, val, test, a, channels)
        print(f"{name:>15}: test balanced accuracy {score:.4f}")


if __name__ == "__main__":
    main()
