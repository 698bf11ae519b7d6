import dataclasses
import os
import re
import subprocess
import sys

import pytest
import yaml

from augment.cli import main
from augment.config import STAGE_CONFIGS
from conftest import ROOT


def _write(tmp_path, params) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


@pytest.mark.parametrize("stage", sorted(STAGE_CONFIGS))
def test_help_lists_every_params_key(capsys, stage):
    """``augment <stage> --help`` lists every key of the stage's params section, each at the
    start of an indented line (followed by a space, ':', '=' or the line's end, so that an
    option's wrapped help such as "    epochs) (default: ...)" does not count)."""
    with pytest.raises(SystemExit) as exit_:
        main([stage, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    keys = [f.name for f in dataclasses.fields(STAGE_CONFIGS[stage])]
    assert keys, f"{stage} has no params keys to list"
    listed = lambda key: re.search(rf"^[ \t]+{re.escape(key)}(?=[ \t:=,]|$)", out, re.M)  # noqa: E731
    missing = [k for k in keys if not listed(k)]
    assert not missing, f"augment {stage} --help does not list {missing}:\n{out}"
    if stage == "train":
        assert re.search(r"^[ \t]+--resume\b", out, re.M)


def test_bad_param_exits_2_and_writes_nothing(tmp_path, params, capsys):
    params["train"]["epochs"] = -1
    out = tmp_path / "gan.pt"
    code = main(["train", "--params", _write(tmp_path, params), "--out", str(out),
                 "--data", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "train.epochs: got -1" in err and "Traceback" not in err
    assert not out.exists()


def test_missing_inputs_exit_2(tmp_path, params, capsys):
    code = main(["synthesize", "--params", _write(tmp_path, params),
                 "--data", str(tmp_path / "prepared"), "--out", str(tmp_path / "syn")])
    assert code == 2 and "run the prepare stage first" in capsys.readouterr().err
    assert not (tmp_path / "syn").exists()


def test_flow_entry_point_rejects_unknown_key_before_prefect(tmp_path, params):
    params["prepare"]["sauce"] = "digits"
    proc = subprocess.run([sys.executable, "-m", "flows", "prepare", "--params",
                           _write(tmp_path, params), "--out", str(tmp_path / "p")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "prepare: unknown key(s) sauce; allowed keys are: source" in proc.stderr
    assert proc.stderr.startswith("python -m flows prepare: error:")
    assert "Traceback" not in proc.stderr and not (tmp_path / "p").exists()


@pytest.mark.parametrize("stage", ["judge", "evaluate"])
def test_flow_stage_error_is_one_line_without_traceback(tmp_path, params, prefect_api, stage):
    """A user-fixable error inside a stage's flow (what ``dvc repro`` runs): exit 2, the message
    once on the last line, no traceback (Prefect logged its own, with our frames, before)."""
    proc = subprocess.run([sys.executable, "-m", "flows", stage, "--params",
                           _write(tmp_path, params), "--data", str(tmp_path / "none")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env={
                              **os.environ, "PYTHONPATH": str(ROOT), "PREFECT_LOGGING_LEVEL": "INFO"})
    ours = [line for line in proc.stderr.strip().splitlines()  # not Prefect's log lines, whose
            if not re.match(r"\d\d:\d\d:\d\d\.\d+ \| ", line)]  # shutdown can log after us
    assert proc.returncode == 2, proc.stderr
    assert ours[-1].startswith(f"python -m flows {stage}: error: ") and "prepare" in ours[-1]
    assert sum(line.startswith("python -m flows") for line in ours) == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"Failed(\"DataError: {tmp_path / 'none'}" in proc.stderr  # the run's state says why


def test_train_before_judge_names_the_stage_to_run(tmp_path, params, prepared, capsys):
    code = main(["train", "--params", _write(tmp_path, params), "--data", str(prepared),
                 "--judge", str(tmp_path / "judge.pt"), "--out", str(tmp_path / "gan.pt")])
    err = capsys.readouterr().err
    assert code == 2 and "run the judge stage first" in err and "Traceback" not in err
    assert not (tmp_path / "gan.pt").exists()


def test_ctrl_c_is_one_line_and_status_130(tmp_path, params, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    code = main(["train", "--params", _write(tmp_path, params)], runner=interrupted)
    err = capsys.readouterr().err
    assert code == 130 and err.count("\n") == 1 and "interrupted" in err and "resumes" in err
