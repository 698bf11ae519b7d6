from benchmarks.cas import train_with_snapshots
from conftest import fabricate_images

from augment.config import TrainConfig


def test_cas_snapshots_fill_the_later_marks_when_a_fixed_epoch_count_ends_first():
    cfg = TrainConfig(preset="classic", epochs=2, batch_size=8, width=8)
    snaps = train_with_snapshots(fabricate_images([8, 8]), cfg, seed=0, budget=3600.0,
                                 fractions=[1.0, 0.5])
    assert [(s["fraction"], s["epoch"]) for s in snaps] == [(0.5, 2), (1.0, 2)]
    assert snaps[0]["state"] and snaps[0]["hparams"]["preset"] == "classic"
