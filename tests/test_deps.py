"""dvc.yaml's code deps are what each stage imports (flows/deps.py), found from the source."""

from __future__ import annotations

import ast

from augment.stages import STAGES
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


def test_each_stage_runs_its_own_module_and_what_it_imports():
    code = {s: set(stage_code(s)) for s in STAGES}
    for stage, deps in code.items():
        own = {p for p in deps if p.startswith("augment/stages/")}
        assert own == {"augment/stages/__init__.py", f"augment/stages/{stage}.py"}, stage
    assert "augment/sources.py" in code["prepare"] and "augment/sources.py" not in code["train"]
    assert {"augment/train.py", "augment/losses.py", "augment/fidelity.py"} <= code["train"]
    assert not {"augment/train.py", "augment/losses.py"} & (code["prepare"] | code["evaluate"])
    # `import augment` binds nothing eagerly: the generator's code is not prepare's or the judge's
    assert not {"augment/models.py", "augment/synthesis.py"} & (code["prepare"] | code["judge"])
    assert "flows/evaluate.py" in code["evaluate"] and "flows/stages.py" in code["train"]
    # a module imported by an imported module counts (train.py -> runtime.py), as do the package
    # __init__s that importing a submodule runs
    assert {"augment/runtime.py", "augment/__init__.py", "flows/__init__.py"} <= code["prepare"]
    assert all((ROOT / p).is_file() for deps in code.values() for p in deps)


def test_stage_modules_import_at_the_top_only():
    """A stage module's imports are its first lines: read alone, it shows all it depends on."""
    for stage in STAGES:
        tree = ast.parse((ROOT / "augment" / "stages" / f"{stage}.py").read_text())
        nested = [n.lineno for top in tree.body if not isinstance(top, (ast.Import, ast.ImportFrom))
                  for n in ast.walk(top) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert nested == [], (stage, nested)


def test_an_edit_to_the_evaluate_side_reruns_evaluate_only():
    """The classifier lives in augment/classifier.py, which the judge shares; the variant
    machinery (evaluate.py, mixing.py, longtail.py, analysis.py, the classic policies) is
    evaluate's alone, so a change to a report line or a long-tail rule does not retrain the
    GAN."""
    code = {s: set(stage_code(s)) for s in STAGES}
    for module in ("augment/evaluate.py", "augment/mixing.py", "augment/longtail.py",
                   "augment/analysis.py", "augment/classic.py"):
        assert [s for s, deps in code.items() if module in deps] == ["evaluate"], module
    assert all("augment/classifier.py" in code[s] for s in ("judge", "train", "evaluate"))
