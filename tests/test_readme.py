"""The README's library example runs as written (against a tiny prepared set + checkpoint)."""

import os
import re
import runpy

from conftest import ROOT


def test_readme_python_example_runs(prepared, checkpoint, tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "README has no python example"
    (tmp_path / "data").mkdir()
    (tmp_path / "models").mkdir()
    os.symlink(prepared, tmp_path / "data" / "prepared")
    os.symlink(checkpoint, tmp_path / "models" / "gan.pt")
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        runpy.run_path(str(script))
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    # after balancing, every class has as many (real + synthetic) images as the largest
    counts = re.findall(r"\[([\d ]+)\]", out)[-1].split()
    assert len(set(counts)) == 1, out
