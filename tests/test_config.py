import dataclasses

import pytest
import yaml

from augment.config import (STAGE_CONFIGS, ClassifierConfig, EvaluateConfig, PrepareConfig,
                            SynthesizeConfig, TrainConfig, from_dict, load_params, override,
                            stage_config)
from augment.errors import ConfigError
from conftest import ROOT


def test_repository_params_validate():
    params = load_params(ROOT / "params.yaml")
    for section, cls in STAGE_CONFIGS.items():  # every stage's section, judge included
        assert isinstance(stage_config(params, section), cls)


@pytest.mark.parametrize("section", sorted(STAGE_CONFIGS))
def test_configs_are_frozen(section):
    cfg = STAGE_CONFIGS[section]()
    for f in dataclasses.fields(cfg):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, f.name, None)


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


# The demo's one departure from the library defaults: `make repro` shows the real use case, a
# long tail made from the balanced embedded digits (params.yaml says so next to the key).
DEMO = {("prepare", "imbalance_ratio"): 100.0}


def test_params_yaml_ships_the_dataclass_defaults():
    """One source of defaults: the repository's params.yaml is the configs' defaults, key by key,
    but for the documented :data:`DEMO` settings."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(params) == {"seed", *STAGE_CONFIGS}
    for section, cls in STAGE_CONFIGS.items():
        fields = {f.name: f.default for f in dataclasses.fields(cls)}
        assert set(params[section]) == set(fields), section
        for key, default in fields.items():
            shipped = params[section][key]
            if (section, key) in DEMO:
                assert shipped == DEMO[section, key] != default, f"{section}.{key}"
                continue
            assert shipped == (list(default) if isinstance(default, tuple) else default), \
                f"{section}.{key}: params.yaml {shipped!r}, {cls.__name__} {default!r}"


def test_library_functions_take_their_defaults_from_the_configs():
    import inspect

    import augment
    from augment.classifier import SmallCNN, fit_classifier
    from augment.evaluate import evaluate_variant
    from augment.synthesis import balance_counts
    from augment.train import train_gan

    def defaults(fn) -> dict:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items()
                if p.default is not inspect.Parameter.empty}

    clf, syn = ClassifierConfig(), SynthesizeConfig()
    fit = defaults(fit_classifier)
    for key in ("epochs", "batch_size", "lr", "weight_decay", "width"):
        assert fit[key] == getattr(clf, key), key
    assert defaults(SmallCNN.__init__)["width"] == clf.width
    assert defaults(evaluate_variant)["classic"] == EvaluateConfig().classic
    draw = defaults(augment.synthesize)
    assert (draw["batch_size"], draw["amp"], draw["max_draws"]) == (syn.batch_size, syn.amp,
                                                                    syn.max_draws)
    assert (defaults(balance_counts)["target"], defaults(balance_counts)["multiple"]) == \
        (syn.target, syn.multiple)
    assert defaults(train_gan)["cfg"] == TrainConfig()


def test_every_key_says_what_it_does():
    for cls in STAGE_CONFIGS.values():
        for f in dataclasses.fields(cls):
            assert len(f.metadata.get("doc", "")) > 10, f"{cls.__name__}.{f.name} has no doc"


def test_the_docs_preset_table_is_the_codes():
    """Preset values are stated once: docs/parameters.md embeds resolve_config's table."""
    from augment.train import preset_table

    text = (ROOT / "docs" / "parameters.md").read_text()
    block = text.split("<!-- preset table: generated -->\n")[1].split("<!-- end preset table -->")[0]
    table = preset_table()
    assert block == table, f"docs/parameters.md's preset table is stale; paste:\n{table}"
    assert "| `lr_g` | `0.002` | `0.001` | `0.0002` |" in table  # read from the presets


def test_the_preset_table_follows_a_changed_preset(monkeypatch):
    from augment import models
    from augment.train import preset_table

    before = preset_table()
    dcgan = models.PRESETS["dcgan"]
    monkeypatch.setitem(models.PRESETS, "dcgan", dataclasses.replace(
        dcgan, defaults={**dcgan.defaults, "lr_g": 5e-4}))
    assert preset_table() != before and "| `lr_g` | `0.0005` |" in preset_table()


@pytest.mark.parametrize("section,key,value", [("train", "minutes", float("nan")),
                                               ("train", "lr_g", float("nan")),
                                               ("synthesize", "multiple", float("inf")),
                                               ("evaluate", "posthoc_taus", [float("nan")])])
def test_nan_and_infinity_are_not_numbers_here(section, key, value):
    """NaN passes every comparison of a range check, infinity every lower bound."""
    with pytest.raises(ConfigError, match=rf"{section}.{key}: got (nan|inf); expected a finite number"):
        stage_config({section: {key: value}}, section)


def test_params_file_not_utf8_or_seed_out_of_range(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seed: 0  # caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text .* save it as UTF-8"):
        load_params(path)
    path.write_text(f"seed: {2**64}\n")
    with pytest.raises(ConfigError, match=r"seed: got \d+; expected an integer in \[0, 2147483647\]"):
        load_params(path)


def test_exponents_without_a_dot_are_numbers_as_dvc_reads_them(tmp_path):
    """`lr_g: 2e-4` typed by hand: PyYAML's YAML 1.1 reads a string (and the stage refused it),
    DVC's YAML 1.2 a float (`dvc params diff` shows 0.0002); the stage now reads what DVC does,
    in the file and in an override."""
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr_g: 2e-4\n  lr_d: 1.0e-3\n  ema_decay: 999e-3\n")
    train = stage_config(load_params(path), "train")
    assert (train.lr_g, train.lr_d, train.ema_decay) == (2e-4, 1e-3, 0.999)
    assert override({}, ["train.lr_g=3e-4"])["train"]["lr_g"] == 3e-4
    assert yaml.safe_load("2e-4") == "2e-4"  # PyYAML's own loader is left as it is
