import subprocess
import sys

import yaml

from augment.cli import main
from conftest import ROOT


def _write(tmp_path, params) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return str(path)


def test_help_lists_every_params_key(capsys):
    try:
        main(["train", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    out = capsys.readouterr().out
    for key in ("preset", "loss", "diffaug", "ema_decay", "checkpoint_every", "--resume"):
        assert key in out


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
