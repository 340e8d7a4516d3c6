"""The README's "Extending mmjax" section is true: its dataset and method modules, registered from
user code with one line each, train through ``mmjax.train.train``.

The section's ``python`` blocks are taken from README.md as they are: a block whose first line is
``# <file>.py`` is written to that file in a temporary folder, the last block runs there in a
fresh interpreter (so the registrations cannot leak into the other tests), with its own data dir.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section() -> str:
    start = README.index("\n## Extending mmjax\n")
    end = README.index("\n## ", start + 1)
    return README[start:end]


def _blocks() -> tuple[dict[str, str], str]:
    """``({file name: module text}, script)`` from the section's python blocks."""
    blocks = re.findall(r"```python\n(.*?)```", _section(), re.S)
    modules = {}
    for block in blocks[:-1]:
        first = block.splitlines()[0]
        match = re.fullmatch(r"# (\w+\.py)", first)
        assert match, f"a module block must start with '# <file>.py', got {first!r}"
        modules[match.group(1)] = block
    return modules, blocks[-1]


def test_section_shows_one_dataset_module_one_method_module_and_their_registry_lines():
    modules, script = _blocks()
    assert sorted(modules) == ["smoothed_concat.py", "tiny_data.py"]
    assert "ENTRY = registry.Entry(" in modules["tiny_data.py"]
    assert "class SmoothedConcatConfig(MethodConfig)" in modules["smoothed_concat.py"]
    registrations = [line for line in script.splitlines() if ".register(" in line]
    assert len(registrations) == 2  # one line per addition (the method's wraps to a second)
    # The in-tree form names real registries.
    assert '"tiny": "mmjax.data.tiny",' in _section()
    assert "REGISTRY: dict[str, str] = {" in (ROOT / "mmjax/data/registry.py").read_text()
    assert "REGISTRY: dict[str, Entry] = {" in (ROOT / "mmjax/methods/__init__.py").read_text()


@pytest.mark.slow
def test_section_code_registers_and_trains(tmp_path):
    modules, script = _blocks()
    for name, text in modules.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "run.py").write_text(script)
    env = {**os.environ, "MMJAX_DATA_DIR": str(tmp_path / "data"), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join(
               p for p in (str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.run([sys.executable, "run.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout.splitlines()
    # data info through the registered entry: both views, the 80/10/10 % split, the how line.
    assert out[0] == "tiny: classification, 3 classes"
    assert [line.split()[1] for line in out if line.startswith("  modality")] == ["left",
                                                                                   "right"]
    assert any(line.startswith("  train   480 samples") for line in out)
    assert "  how: two views of 3 Gaussian class centres plus unit noise, drawn from data.seed" \
        in out
    assert (tmp_path / "data" / "tiny" / "seed0.npz").is_file()
    # train wrote the run of the registered method on the registered dataset.
    result = json.loads((tmp_path / "runs" / "tiny" / "eval.json").read_text())
    assert (result["dataset"], result["method"], result["step"]) == ("tiny", "smoothed_concat",
                                                                     100)
    config = json.loads((tmp_path / "runs" / "tiny" / "config.json").read_text())
    assert config["method"] == {"name": "smoothed_concat", "smoothing": 0.1}
    accuracy = result["subsets"]["left+right"]["accuracy"]
    assert float(out[-1]) == accuracy
    assert accuracy > 0.9  # well-separated classes (chance 1/3): training did learn
