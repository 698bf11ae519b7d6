"""dvc.yaml's code deps are what each stage imports (flows/deps.py), found from the source."""

from __future__ import annotations

from pathlib import Path

from conftest import ROOT
from flows.deps import main, stage_code


def test_dvc_yaml_code_deps_match_what_stages_import(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().out


def test_check_fails_when_a_stage_misses_an_imported_module(tmp_path, capsys):
    text = (ROOT / "dvc.yaml").read_text()
    assert text.count("      - augment/sources.py\n") == 1
    broken = tmp_path / "dvc.yaml"
    broken.write_text(text.replace("      - augment/sources.py\n", ""))
    assert main(["--check", "--dvc-yaml", str(broken)]) == 1
    out = capsys.readouterr()
    assert "missing ['augment/sources.py']" in out.out and "1 stage(s)" in out.err


def test_imports_inside_stage_functions_count_for_that_stage_only():
    prepare, train, evaluate = (set(stage_code(s)) for s in ("prepare", "train", "evaluate"))
    # augment/stages.py imports these inside prepare(), train(), evaluate() alone
    assert "augment/sources.py" in prepare and "augment/sources.py" not in train
    assert {"augment/train.py", "augment/losses.py", "augment/fidelity.py"} <= train
    assert not {"augment/train.py", "augment/losses.py"} & (prepare | evaluate)
    assert "augment/analysis.py" in evaluate and "augment/analysis.py" not in train
    assert "flows/evaluate.py" in evaluate and "flows/stages.py" in train
    # a module imported by an imported module counts (train.py -> runtime.py), as does the
    # package __init__ that importing a submodule runs
    assert {"augment/runtime.py", "augment/__init__.py", "flows/__init__.py"} <= prepare
    assert all((ROOT / p).is_file() for p in prepare | train | evaluate)


def test_an_edit_to_the_evaluate_side_reruns_evaluate_only():
    """The classifier lives in augment/classifier.py, which the judge shares; the variant
    machinery (evaluate.py, mixing.py, longtail.py, analysis.py) is evaluate's alone, so a
    change to a report line or a long-tail rule does not retrain the GAN."""
    code = {s: set(stage_code(s)) for s in ("prepare", "judge", "train", "synthesize",
                                             "evaluate")}
    for module in ("augment/evaluate.py", "augment/mixing.py", "augment/longtail.py",
                   "augment/analysis.py"):
        assert [s for s, deps in code.items() if module in deps] == ["evaluate"], module
    assert all("augment/classifier.py" in code[s] for s in ("judge", "train", "evaluate"))
