import pytest
import yaml

from augment.config import (EvaluateConfig, PrepareConfig, SynthesizeConfig, TrainConfig,
                            from_dict, load_params, stage_config)
from augment.errors import ConfigError
from conftest import ROOT


def test_repository_params_validate():
    params = load_params(ROOT / "params.yaml")
    for section in ("prepare", "train", "synthesize", "evaluate"):
        stage_config(params, section)


def test_configs_are_frozen():
    cfg = TrainConfig()
    with pytest.raises(Exception):
        cfg.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("section,raw,needle", [
    ("train", {"epoch": 3}, "train: unknown key(s) epoch"),
    ("train", {"epochs": "ten"}, "train.epochs: got 'ten'"),
    ("train", {"epochs": 0}, "train.epochs: got 0; allowed range is [1"),
    ("train", {"epochs": True}, "train.epochs"),
    ("train", {"preset": "biggan"}, "allowed values are 'dcgan', 'sngan', 'classic'"),
    ("train", {"betas": [0.5]}, "train.betas"),
    ("train", {"betas": [0.5, 1.5]}, "train.betas: got 1.5; allowed range is [0, 1)"),
    ("train", {"lr_decay": 1.5}, "train.lr_decay: got 1.5; allowed range is [0, 1]"),
    ("prepare", {"val_fraction": 1.0}, "prepare.val_fraction: got 1.0; allowed range is (0, 1)"),
    ("prepare", {"channels": 2}, "prepare.channels: got 2"),
    ("prepare", {"classes": [3, 1]}, "prepare.classes: 3 is not a string; quote"),
    ("prepare", {"classes": ["3", "1", "3"]}, "prepare.classes: 3 listed more than once"),
    ("synthesize", {"target": "min"}, "synthesize.target"),
    ("synthesize", {"target": {"3": -1}}, "synthesize.target"),
    ("synthesize", {"target": {0: 500}}, "synthesize.target: key 0 is not a string; quote"),
    ("evaluate", {"variants": []}, "must not be empty"),
    ("evaluate", {"variants": ["real", "gan"]}, "evaluate.variants"),
])
def test_bad_values_name_the_key(section, raw, needle):
    cls = {"train": TrainConfig, "prepare": PrepareConfig, "synthesize": SynthesizeConfig,
           "evaluate": EvaluateConfig}[section]
    with pytest.raises(ConfigError) as err:
        from_dict(cls, raw, section=section)
    assert needle in str(err.value)


def test_coercions():
    cfg = from_dict(TrainConfig, {"betas": [0, 0.9], "lr_g": 1e-3}, section="train")
    assert cfg.betas == (0.0, 0.9) and isinstance(cfg.betas[0], float)
    syn = from_dict(SynthesizeConfig, {"target": {"3": 10}}, section="synthesize")
    assert syn.target == {"3": 10}
    assert from_dict(SynthesizeConfig, {"target": 50}, section="synthesize").target == 50
    ev = from_dict(EvaluateConfig, {"variants": ["synthetic"]}, section="evaluate")
    assert ev.variants == ("synthetic",)


def test_load_params_rejects_unknown_sections_and_bad_seed(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 0, "trian": {}}))
    with pytest.raises(ConfigError, match="unknown top-level key.*trian"):
        load_params(path)
    path.write_text(yaml.safe_dump({"seed": -1}))
    with pytest.raises(ConfigError, match="seed"):
        load_params(path)
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "missing.yaml")
    path.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)
